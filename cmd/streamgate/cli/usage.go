package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/budget"
)

// usageToken reads the usage API's bearer token from the variable
// limits.budget.usage_token_env names; "" when the API is off.
func usageToken(cfg *config.Config) (string, error) {
	if cfg.Limits == nil || cfg.Limits.Budget.UsageTokenEnv == "" {
		return "", nil
	}
	name := cfg.Limits.Budget.UsageTokenEnv
	tok := os.Getenv(name)
	if tok == "" {
		return "", fmt.Errorf("cannot serve the usage API: environment variable %s is empty or unset", name)
	}
	return tok, nil
}

// lateHandler serves with the handler set once the ext_proc server
// exists (the metrics listener starts first); 503 until then.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := l.h.Load()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// usageCmd prints the usage API's answer as tables: each budgeted
// tenant's windows (or -tenant's), or with -series hour|day that tenant's
// usage series. It reads the metrics address and the token's variable
// from the config (-url overrides the address).
func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("usage", stderr)
	tenant := fs.String("tenant", "", "only this `tenant` (required with -series)")
	series := fs.String("series", "", "print the tenant's usage per `hour` or day instead")
	from := fs.String("from", "", "series start, RFC 3339 (default: a day or 30 days before -to)")
	to := fs.String("to", "", "series end, RFC 3339 (default: now)")
	base := fs.String("url", "", "usage API base `URL` (default: http:// + metrics.listen)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	tok, err := usageToken(cfg)
	if err != nil {
		return err
	}
	if tok == "" {
		fmt.Fprintln(stderr, "streamgate usage: limits.budget.usage_token_env is not set: the usage API is off")
		return ErrReported
	}
	if *base == "" {
		*base = "http://" + dialable(cfg.Metrics.Listen)
	}
	q := url.Values{}
	p := budget.UsagePath
	if *tenant != "" {
		q.Set("tenant", *tenant)
	}
	if *series != "" {
		p = budget.SeriesPath
		q.Set("step", *series)
		if *from != "" {
			q.Set("from", *from)
		}
		if *to != "" {
			q.Set("to", *to)
		}
	}
	body, err := getUsage(ctx, *base+p+"?"+q.Encode(), tok)
	if err != nil {
		return err
	}
	if *series != "" {
		return printSeries(stdout, body)
	}
	return printUsage(stdout, body)
}

// dialable turns a listen address with an unspecified host into a local one.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
		return listen
	}
	return net.JoinHostPort("127.0.0.1", port)
}

func getUsage(ctx context.Context, u, tok string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build usage request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the usage API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot read the usage API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		return nil, fmt.Errorf("usage API answered %d: %s", resp.StatusCode, e.Error)
	}
	return body, nil
}

func printUsage(w io.Writer, body []byte) error {
	var u struct {
		Tenants []budget.TenantUsage `json:"tenants"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return fmt.Errorf("cannot decode the usage API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSCOPE\tWINDOW\tSTART\tLIMIT\tSPENT\tREMAINING\tMODEL\tCOST\tINPUT\tOUTPUT\tREQUESTS")
	for _, t := range u.Tenants {
		for _, wu := range t.Windows {
			scope := wu.Scope
			if wu.Key != "" {
				scope += ":" + wu.Key
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t\t\n", t.Tenant, scope, wu.Window, wu.Start.Format(time.RFC3339),
				amount(wu.Limit), amount(wu.Spent), amount(wu.Remaining))
			for _, m := range wu.Models {
				fmt.Fprintf(tw, "\t\t\t\t\t\t\t%s\t%s\t%d\t%d\t%d\n", m.Model, amount(m.Cost), m.InputTokens, m.OutputTokens, m.Requests)
			}
		}
	}
	return tw.Flush()
}

func printSeries(w io.Writer, body []byte) error {
	var s struct {
		Tenant string         `json:"tenant"`
		Points []budget.Point `json:"points"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("cannot decode the usage API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tKEY\tMODEL\tCOST\tINPUT\tOUTPUT\tREQUESTS")
	for _, p := range s.Points {
		for _, m := range p.Models {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", p.Start.Format(time.RFC3339), m.Key, m.Model, amount(m.Cost),
				m.InputTokens, m.OutputTokens, m.Requests)
		}
	}
	return tw.Flush()
}

// amount prints an amount of currency exactly (micro-units at most).
func amount(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

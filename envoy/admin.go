package envoy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// adminClient is used for the few admin calls Streamgate makes; it never
// follows redirects and shares no state with other clients.
var adminClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// DrainListeners asks the Envoy whose admin listens on admin (host:port) to
// start a graceful drain: HTTP/1 responses get "connection: close", HTTP/2
// connections get GOAWAY, open requests go on, and the listeners close
// after Envoy's --drain-time-s. Envoy keeps running (skip_exit).
func DrainListeners(ctx context.Context, admin string) error {
	return adminPost(ctx, admin, "/drain_listeners?graceful&skip_exit")
}

// FailHealthcheck makes Envoy's health check filter (if a listener has one)
// answer 503, so load balancers probing Envoy stop sending it new clients.
func FailHealthcheck(ctx context.Context, admin string) error {
	return adminPost(ctx, admin, "/healthcheck/fail")
}

func adminPost(ctx context.Context, admin, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+admin+path, nil)
	if err != nil {
		return fmt.Errorf("cannot build envoy admin request: %w", err)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot call envoy admin %s: %w", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot call envoy admin %s: status %d", path, resp.StatusCode)
	}
	return nil
}

// ActiveRequests returns how many downstream requests Envoy is serving on
// its listeners (the sum of every http.<prefix>.downstream_rq_active gauge),
// not counting the admin interface's own.
func ActiveRequests(ctx context.Context, admin string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+admin+`/stats?format=json&type=Gauges&filter=^http\..*\.downstream_rq_active$`, nil)
	if err != nil {
		return 0, fmt.Errorf("cannot build envoy stats request: %w", err)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot read envoy stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("cannot read envoy stats: status %d", resp.StatusCode)
	}
	return parseActive(io.LimitReader(resp.Body, 4<<20))
}

// parseActive sums the downstream_rq_active gauges of Envoy's JSON stats,
// skipping the admin listener's.
func parseActive(r io.Reader) (int64, error) {
	var stats struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.NewDecoder(r).Decode(&stats); err != nil {
		return 0, fmt.Errorf("cannot decode envoy stats: %w", err)
	}
	var n int64
	for _, s := range stats.Stats {
		if !strings.HasPrefix(s.Name, "http.") || !strings.HasSuffix(s.Name, ".downstream_rq_active") || strings.HasPrefix(s.Name, "http.admin.") {
			continue
		}
		var v int64
		if err := json.Unmarshal(s.Value, &v); err != nil {
			return 0, fmt.Errorf("cannot decode envoy stat %s: %w", s.Name, err)
		}
		n += v
	}
	return n, nil
}

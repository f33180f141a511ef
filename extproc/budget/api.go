package budget

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// Paths of the usage API on the metrics listener.
const (
	UsagePath  = "/usage"
	SeriesPath = "/usage/series"
)

// errQuery is a malformed usage API query.
var errQuery = errors.New("invalid query")

// SeriesQuery is a parsed series request.
type SeriesQuery struct {
	Tenant, Step string
	From, To     time.Time
}

// ParseSeriesQuery reads ?tenant=&step=hour|day&from=&to= (RFC 3339;
// to defaults to now, from to a day before to for hours, 30 days for
// days). Every bad value is an error wrapping errQuery.
func ParseSeriesQuery(q url.Values, now time.Time) (SeriesQuery, error) {
	s := SeriesQuery{Tenant: q.Get("tenant"), Step: q.Get("step"), To: now}
	if !ratelimit.ValidTenant(s.Tenant) {
		return s, errors.Join(errQuery, errors.New("tenant must be a tenant name"))
	}
	switch s.Step {
	case "":
		s.Step = StepHour
	case StepHour, StepDay:
	default:
		return s, errors.Join(errQuery, errors.New("step must be hour or day"))
	}
	var err error
	if v := q.Get("to"); v != "" {
		if s.To, err = time.Parse(time.RFC3339, v); err != nil {
			return s, errors.Join(errQuery, errors.New("to must be an RFC 3339 time"))
		}
	}
	s.From = s.To.Add(-24 * time.Hour)
	if s.Step == StepDay {
		s.From = s.To.AddDate(0, 0, -30)
	}
	if v := q.Get("from"); v != "" {
		if s.From, err = time.Parse(time.RFC3339, v); err != nil {
			return s, errors.Join(errQuery, errors.New("from must be an RFC 3339 time"))
		}
	}
	if !s.From.Before(s.To) {
		return s, errors.Join(errQuery, errors.New("from must be before to"))
	}
	return s, nil
}

// Handler serves the usage API: GET UsagePath (every budgeted tenant, or
// ?tenant=) and GET SeriesPath, to callers presenting token as a bearer
// token (compared in constant time; never logged). current returns the
// serving config's budgets (nil: none).
func Handler(current func() *Budgets, token string) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || token == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="streamgate-usage"`)
			writeError(w, http.StatusUnauthorized, "a valid usage API bearer token is required")
			return
		}
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		b := current()
		if b == nil {
			writeError(w, http.StatusNotFound, "no budgets are configured")
			return
		}
		if r.URL.Path == SeriesPath {
			b.serveSeries(w, r)
			return
		}
		b.serveUsage(w, r)
	})
}

func (b *Budgets) serveUsage(w http.ResponseWriter, r *http.Request) {
	tenants := []string{r.URL.Query().Get("tenant")}
	if tenants[0] == "" {
		var err error
		if tenants, err = b.Tenants(r.Context()); err != nil {
			writeError(w, http.StatusServiceUnavailable, "the budget store is unreachable")
			return
		}
	} else if !ratelimit.ValidTenant(tenants[0]) {
		writeError(w, http.StatusBadRequest, "tenant must be a tenant name")
		return
	}
	out := struct {
		Time    time.Time     `json:"time"`
		Tenants []TenantUsage `json:"tenants"`
	}{Time: b.shared.now().UTC(), Tenants: []TenantUsage{}}
	for _, t := range tenants {
		u, err := b.Usage(r.Context(), t)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "the budget store is unreachable")
			return
		}
		out.Tenants = append(out.Tenants, u)
	}
	writeJSON(w, out)
}

func (b *Budgets) serveSeries(w http.ResponseWriter, r *http.Request) {
	q, err := ParseSeriesQuery(r.URL.Query(), b.shared.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errQuery.Error()+"\n"))
		return
	}
	pts, err := b.Series(r.Context(), q.Tenant, q.Step, q.From, q.To)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the budget store is unreachable")
		return
	}
	writeJSON(w, struct {
		Tenant string  `json:"tenant"`
		Step   string  `json:"step"`
		Points []Point `json:"points"`
	}{q.Tenant, q.Step, pts})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/extproc/budget"
)

const usageConfig = `extproc:
  message_timeout: 5s
metrics:
  listen: METRICS
backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:8000"]}
models:
  - {name: m, backend: a}
limits:
  budget: {usage_token_env: SG_TEST_USAGE_TOKEN}
  tenants: [{name: acme, budgets: [{window: day, amount: 2.5}, {window: 1h, amount: 1}]}]
`

// TestUsageCommandPrintsTheAPI: streamgate usage asks the usage API on
// the metrics address with the token and prints its answer as a table;
// a wrong token is refused.
func TestUsageCommandPrintsTheAPI(t *testing.T) {
	t.Setenv("SG_TEST_USAGE_TOKEN", "s3cr3t-usage")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(usageConfig, "METRICS", lis.Addr().String(), 1)), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	lim, err := extproc.NewLimits(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv := extproc.NewServer(cfg, extproc.NewRoutes(cfg, 1), nil, extproc.NewMetrics(prometheus.NewRegistry()))
	srv.SetLimits(lim)
	b := srv.Budgets()
	require.NotNil(t, b)
	r, err := b.Reserve(context.Background(), budget.Request{Tenant: "acme", Cost: budget.Micro(1)})
	require.NoError(t, err)
	r.Settle(budget.Spend{Model: "m", Cost: budget.Micro(0.75), Input: 1000, Output: 200})

	tok, err := usageToken(cfg)
	require.NoError(t, err)
	late := &lateHandler{}
	late.set(budget.Handler(srv.Budgets, tok))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveMetrics(ctx, lis, prometheus.NewRegistry(), &readiness{}, false, late) }()
	defer func() { cancel(); <-done }()

	var out, errOut bytes.Buffer
	require.NoError(t, Main(t.Context(), []string{"usage", "-c", path}, &out, &errOut), errOut.String())
	t.Logf("\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4, "a header, the day window with its model, the rolling window")
	assert.Regexp(t, `^acme\s+tenant\s+day\s+\S+\s+2.5\s+0.75\s+1.75`, lines[1])
	assert.Regexp(t, `\s+m\s+0.75\s+1000\s+200\s+1$`, lines[2])
	assert.Regexp(t, `^acme\s+tenant\s+1h0m0s\s+\S+\s+1\s+0.75\s+0.25`, lines[3])

	out.Reset()
	require.NoError(t, Main(t.Context(), []string{"usage", "-c", path, "-tenant", "acme", "-series", "hour"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "START")
	assert.Regexp(t, `\s+m\s+0.75\s+1000\s+200\s+1\n`, out.String())

	t.Setenv("SG_TEST_USAGE_TOKEN", "wrong")
	err = Main(t.Context(), []string{"usage", "-c", path}, &out, &errOut)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	assert.NotContains(t, err.Error(), "s3cr3t")

	resp, err := http.Get("http://" + lis.Addr().String() + budget.UsagePath)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestUsageTokenMustBeSet(t *testing.T) {
	t.Setenv("SG_TEST_USAGE_TOKEN", "")
	cfg, err := config.Parse("c.yaml", []byte(strings.Replace(usageConfig, "METRICS", "127.0.0.1:9999", 1)))
	require.NoError(t, err)
	_, err = usageToken(cfg)
	require.ErrorContains(t, err, "SG_TEST_USAGE_TOKEN is empty or unset")
}

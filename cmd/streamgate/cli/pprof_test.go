package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestMetricsListenerServesPprofOnlyWhenAsked pins -pprof: the profiling
// endpoints answer on the metrics listener with the flag and are absent
// without it, while /metrics answers either way.
func TestMetricsListenerServesPprofOnlyWhenAsked(t *testing.T) {
	for name, tc := range map[string]struct {
		pprof bool
		want  int
	}{
		"off by default": {pprof: false, want: http.StatusNotFound},
		"on with -pprof": {pprof: true, want: http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- serveMetrics(ctx, lis, prometheus.NewRegistry(), &readiness{}, tc.pprof, nil) }()
			t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
			base := "http://" + lis.Addr().String()
			require.Equal(t, http.StatusOK, get(t, base+"/metrics"))
			for _, path := range []string{pprofPath, pprofPath + "cmdline", pprofPath + "heap", pprofPath + "symbol"} {
				require.Equal(t, tc.want, get(t, base+path), path)
			}
		})
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url) //nolint:gosec // a test server on loopback
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

package extproc

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// TestReloadNeverMixesGenerations: a request that starts while the config
// is being swapped sees one config whole, the old or the new. The small
// generation caps bodies at 1 KiB and routes model m to backend a; the big
// one allows 4 KiB and routes m to b. A 2 KiB body is refused (small) or
// sent to b (big); sent to a means the request saw the small routes with
// the big cap: a mixed generation.
// Before one config generation (issue 14), Update stored the routes and
// the body cap in separate atomics and this failed within a second under
// -race (tens of mixed requests per second).
func TestReloadNeverMixesRoutesAndBodyCap(t *testing.T) {
	gen := func(maxBody int, backend string) (*config.Config, *Routes) {
		cfg, err := config.Parse("t.yaml", []byte(`gateway:
  max_request_body_bytes: `+itoa(maxBody)+`
backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: b, protocol: openai, endpoints: ["127.0.0.1:2"]}
models:
  - {name: m, backend: `+backend+`}
`))
		require.NoError(t, err)
		return cfg, NewRoutes(cfg, 1)
	}
	smallCfg, smallRoutes := gen(1024, "a")
	bigCfg, bigRoutes := gen(4096, "b")
	srv := NewServer(smallCfg, smallRoutes, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			srv.Update(bigCfg, bigRoutes, nil, nil)
			srv.Update(smallCfg, smallRoutes, nil, nil)
		}
	})
	body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 2048) + `"}]}`
	seen := map[string]int{}
	// A fixed time rather than a count: the race window is a few
	// nanoseconds wide, so the test gives it as many tries as a second on
	// this machine allows.
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		st := extproctest.NewStream(t.Context(), reqHeaders("POST", "/v1/chat/completions", false), bodyMsg(body))
		require.NoError(t, srv.Process(st))
		last := st.Sent[len(st.Sent)-1]
		switch {
		case last.GetImmediateResponse() != nil:
			seen["refused (small)"]++
		default:
			seen["backend "+setHeaders(last.GetRequestBody().GetResponse().GetHeaderMutation())["x-streamgate-backend"]]++
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("outcomes: %v", seen)
	assert.Zero(t, seen["backend a"], "requests saw the small generation's routes with the big one's body cap")
}

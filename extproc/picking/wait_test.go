package picking

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// satBackend is a backend of n endpoints that are all full (10 waiting,
// threshold 5) at testNow, whose queue judges freshness at testNow.
func satBackend(t *testing.T, n, maxWaiting int) *Backend {
	t.Helper()
	cfg := testConfig()
	cfg.Saturation = config.PickSaturation{Queue: 5, KVCache: 0.9, MaxWaiting: maxWaiting, MaxWait: time.Second}
	specs := make([]epSpec, n)
	for i := range specs {
		specs[i] = epSpec{m: waiting(10, 0.2)}
	}
	b := testBackend(t, cfg, specs, nil)
	b.q.now = func() time.Time { return testNow }
	require.True(t, b.Saturated(testNow))
	return b
}

// room stores a scrape with room on b's first endpoint and wakes its
// queue, as its scraper does.
func room(b *Backend) {
	e := b.eps[0]
	e.Store(Metrics{Waiting: 1, KVCache: 0.2}, testNow)
	e.wake()
}

// waitAsync runs b.Wait in a goroutine and waits until it is queued.
func waitAsync(t *testing.T, ctx context.Context, b *Backend, prio Priority, maxWait time.Duration) <-chan error {
	t.Helper()
	before := total(b.Waiting())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, prio, maxWait, testNow) }()
	require.Eventually(t, func() bool { return total(b.Waiting()) == before+1 }, time.Second, time.Millisecond, "the request waits")
	return done
}

func total(n [numPriorities]int) int { return n[0] + n[1] + n[2] }

// recv returns what done delivers within a second.
func recv(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		t.Fatal("the waiter was not let go")
		return nil
	}
}

func TestWaitReturnsAtOnceWithoutSaturation(t *testing.T) {
	cfg := testConfig()
	cfg.Saturation = config.PickSaturation{Queue: 5, MaxWaiting: 4, MaxWait: time.Second}
	b := testBackend(t, cfg, []epSpec{{m: waiting(10, 0)}, {m: waiting(1, 0)}}, nil)
	for _, prio := range []Priority{Sheddable, Standard, Critical} {
		assert.NoError(t, b.Wait(context.Background(), prio, time.Second, testNow), prio.String())
	}
	assert.False(t, b.Queued())
}

func TestSaturatedWaiterProceedsWhenAScrapeShowsRoom(t *testing.T) {
	b := satBackend(t, 2, 8)
	done := waitAsync(t, context.Background(), b, Standard, 5*time.Second)
	b.eps[1].wake() // an event without room lets nobody go
	select {
	case err := <-done:
		t.Fatalf("let go while saturated: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	room(b)
	require.NoError(t, recv(t, done))
	assert.False(t, b.Queued())
}

func TestSaturatedWaiterProceedsWhenARequestEnds(t *testing.T) {
	b := satBackend(t, 1, 8)
	e := b.eps[0]
	e.Start() // a request in flight there
	done := waitAsync(t, context.Background(), b, Critical, 5*time.Second)
	// A scrape shows room but its wake is not run yet: the end of the
	// request in flight is the event that finds the room.
	e.Store(Metrics{Waiting: 0, KVCache: 0.1}, testNow)
	e.Done()
	require.NoError(t, recv(t, done))
}

func TestSaturatedWaiterGetsErrSaturatedAfterMaxWait(t *testing.T) {
	b := satBackend(t, 2, 8)
	began := time.Now()
	err := b.Wait(context.Background(), Critical, 30*time.Millisecond, testNow)
	require.ErrorIs(t, err, ErrSaturated)
	assert.GreaterOrEqual(t, time.Since(began), 30*time.Millisecond)
	assert.False(t, b.Queued(), "the waiter left the queue")
	assert.Equal(t, [numPriorities]int{}, b.Waiting())
}

func TestSheddableIsRefusedAtOnceUnderSaturation(t *testing.T) {
	b := satBackend(t, 2, 8)
	began := time.Now()
	require.ErrorIs(t, b.Wait(context.Background(), Sheddable, 5*time.Second, testNow), ErrShed)
	assert.Less(t, time.Since(began), 100*time.Millisecond)
	assert.False(t, b.Queued())
}

func TestFullQueueRefusesWithErrSaturated(t *testing.T) {
	b := satBackend(t, 1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := waitAsync(t, ctx, b, Standard, 5*time.Second)
	require.ErrorIs(t, b.Wait(context.Background(), Critical, 5*time.Second, testNow), ErrSaturated)
	cancel()
	require.ErrorIs(t, recv(t, first), context.Canceled)
}

func TestCriticalWaitersLeaveBeforeStandardOnesInArrivalOrder(t *testing.T) {
	b := satBackend(t, 1, 8)
	type w struct {
		name string
		done <-chan error
	}
	var ws []w
	for _, x := range []struct {
		name string
		prio Priority
	}{{"std1", Standard}, {"crit1", Critical}, {"std2", Standard}, {"crit2", Critical}} {
		ws = append(ws, w{x.name, waitAsync(t, context.Background(), b, x.prio, 5*time.Second)})
	}
	assert.Equal(t, [numPriorities]int{0, 2, 2}, b.Waiting())
	var order []string
	for range ws {
		room(b) // one event, one waiter
		var got string
		require.Eventually(t, func() bool {
			for _, x := range ws {
				select {
				case err := <-x.done:
					require.NoError(t, err)
					got = x.name
					return true
				default:
				}
			}
			return false
		}, time.Second, time.Millisecond)
		order = append(order, got)
	}
	assert.Equal(t, []string{"crit1", "crit2", "std1", "std2"}, order)
}

func TestArrivalWithRoomQueuesBehindEarlierWaiters(t *testing.T) {
	b := satBackend(t, 1, 8)
	first := waitAsync(t, context.Background(), b, Standard, 5*time.Second)
	// Room appears without a wake: the next arrival finds it, lets the
	// earlier waiter go and waits its own turn.
	b.eps[0].Store(Metrics{Waiting: 1}, testNow)
	second := make(chan error, 1)
	go func() { second <- b.Wait(context.Background(), Standard, 5*time.Second, testNow) }()
	require.NoError(t, recv(t, first))
	require.Eventually(t, b.Queued, time.Second, time.Millisecond)
	room(b)
	require.NoError(t, recv(t, second))
}

func TestCanceledWaiterLeavesNothingBehind(t *testing.T) {
	b := satBackend(t, 2, 8)
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		done := waitAsync(t, ctx, b, Standard, 5*time.Second)
		cancel()
		require.ErrorIs(t, recv(t, done), context.Canceled)
	}
	assert.False(t, b.Queued())
	assert.Equal(t, [numPriorities]int{}, b.Waiting())
	assert.Eventually(t, func() bool { return !strings.Contains(stacks(), "(*Backend).Wait") }, time.Second, 5*time.Millisecond, "no goroutine left waiting")
}

// stacks is every goroutine's stack.
func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func TestGrantedWaiterThatGivesUpPassesItsTurnOn(t *testing.T) {
	b := satBackend(t, 1, 8)
	q := b.q
	other := waitAsync(t, context.Background(), b, Standard, 5*time.Second)
	// A critical waiter is let go just as its stream ends (Wait's select
	// saw ctx first): leave hands the room on to the next waiter.
	w := &waiter{ready: make(chan struct{})}
	q.mu.Lock()
	q.lists[Critical] = append(q.lists[Critical], w)
	q.n.Add(1)
	q.grantLocked()
	q.mu.Unlock()
	require.True(t, w.granted)
	require.ErrorIs(t, q.leave(w, Critical, context.Canceled), context.Canceled)
	require.NoError(t, recv(t, other))
	assert.False(t, b.Queued())
}

func TestPoolWaiterFollowsScrapesAndCountsSheds(t *testing.T) {
	srv := newFakeServer(t, []byte("vllm:num_requests_waiting 9\nvllm:kv_cache_usage_perc 0.5\n"))
	reg := prometheus.NewRegistry()
	p := newTestPool(t, reg)
	pk := testPicking(config.PickMetricsVLLM)
	pk.Saturation = config.PickSaturation{Queue: 5, MaxWaiting: 8, MaxWait: time.Second}
	p.Update(poolConfig(pk, srv.addr()))
	b := p.Backend("llm")
	waitScraped(t, b.Endpoints()[0])
	require.ErrorIs(t, b.Wait(context.Background(), Sheddable, time.Second, time.Now()), ErrShed)
	assert.InDelta(t, 1, testutil.ToFloat64(p.metrics.sheds.WithLabelValues("llm", "sheddable")), 0)

	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background(), Critical, 5*time.Second, time.Now()) }()
	require.Eventually(t, b.Queued, time.Second, time.Millisecond)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP streamgate_picking_waiting Requests waiting for room on a saturated picking backend, by backend and priority (critical, standard, sheddable).
# TYPE streamgate_picking_waiting gauge
streamgate_picking_waiting{backend="llm",priority="critical"} 1
streamgate_picking_waiting{backend="llm",priority="sheddable"} 0
streamgate_picking_waiting{backend="llm",priority="standard"} 0
`), "streamgate_picking_waiting"))
	select {
	case err := <-done:
		t.Fatalf("let go while the server reports a full queue: %v", err)
	case <-time.After(50 * time.Millisecond): // several scrapes
	}
	body := []byte("vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0.5\n")
	srv.body.Store(&body)
	require.NoError(t, recv(t, done), "the next scrape shows room")

	// A reload dropping the backend drops its series.
	p.Update(&config.Config{})
	n, err := testutil.GatherAndCount(reg, "streamgate_picking_shed_total")
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestParsePriority(t *testing.T) {
	for in, want := range map[string]Priority{"": Standard, "standard": Standard, "critical": Critical, "sheddable": Sheddable} {
		got, ok := ParsePriority(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"Critical", "high", " critical", "low"} {
		_, ok := ParsePriority(in)
		assert.False(t, ok, in)
	}
}

func FuzzParsePriority(f *testing.F) {
	for _, s := range []string{"", "critical", "standard", "sheddable", "CRIT", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := ParsePriority(s)
		if ok != (s == "" || s == p.String()) {
			t.Fatalf("ParsePriority(%q) = %v, %v", s, p, ok)
		}
		if p >= numPriorities {
			t.Fatalf("ParsePriority(%q) = %d: out of range", s, p)
		}
	})
}

package budget

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// testNow is a settable clock for Budgets.
type testNow struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testNow) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testNow) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func limitsOf(t *testing.T, text string) *config.Limits {
	t.Helper()
	var l config.Limits
	require.NoError(t, yaml.Unmarshal([]byte(text), &l))
	if l.Budget.WarnPercent == 0 {
		l.Budget.WarnPercent = 80
	}
	l.Budget.HourlyRetention, l.Budget.DailyRetention = 48*time.Hour, 30*24*time.Hour
	return &l
}

const acmeBudgets = `
budget: {time_zone: Europe/Paris}
tenants:
  - name: acme
    budgets: [{window: day, amount: 1}, {window: month, amount: 10}]
    api_keys: [{name: ci, budgets: [{window: 1h, amount: 0.5}]}]
  - name: "*"
    budgets: [{window: day, amount: 0.25}]
  - name: free
    requests_per_minute: 10
`

func newTestBudgets(t *testing.T, text string, store Store, clk *testNow) *Budgets {
	t.Helper()
	b := New(limitsOf(t, text), Options{Store: store, Now: clk.now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NotNil(t, b)
	return b
}

func TestReserveAndSettleArithmetic(t *testing.T) {
	clk := &testNow{t: time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)}
	b := newTestBudgets(t, acmeBudgets, NewMemoryStore(clk.now), clk)
	ctx := context.Background()
	r, err := b.Reserve(ctx, Request{Tenant: "acme", Cost: Micro(0.6)})
	require.NoError(t, err)
	w, ok := r.Tightest()
	require.True(t, ok)
	assert.Equal(t, Window{Scope: "tenant", Window: "day", Start: time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC),
		Limit: 1e6, Spent: 600000, Reset: 10 * time.Hour}, w.inUTC())
	// A second request's worst case does not fit the day's remaining 0.4.
	r2, err := b.Reserve(ctx, Request{Tenant: "acme", Cost: Micro(0.5)})
	var de *ratelimit.DeniedError
	require.ErrorAs(t, err, &de)
	require.ErrorIs(t, err, ErrExceeded)
	assert.Equal(t, 10*time.Hour, de.RetryAfter, "the day resets at midnight in Paris")
	assert.Equal(t, "day budget of tenant acme", de.What)
	r2.Settle(Spend{Cost: 1}) // a refusal holds nothing
	// Reconciliation: the first request cost 0.1, so 0.9 is left.
	r.Settle(Spend{Model: "m", Cost: Micro(0.1), Input: 100, Output: 10})
	r.Settle(Spend{Model: "m", Cost: Micro(5)}) // only the first Settle counts
	r3, err := b.Reserve(ctx, Request{Tenant: "acme", Cost: Micro(0.5)})
	require.NoError(t, err, "reconciliation gave back the unused reservation")
	w, _ = r3.Tightest()
	assert.Equal(t, int64(600000), w.Spent)
	u, err := b.Usage(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, u.Windows, 3)
	assert.InDelta(t, 0.6, u.Windows[0].Spent, 1e-9)
	assert.InDelta(t, 0.4, u.Windows[0].Remaining, 1e-9)
	assert.Equal(t, []ModelUsage{{Model: "m", Cost: 0.1, InputTokens: 100, OutputTokens: 10, Requests: 1}}, u.Windows[0].Models)
	assert.Equal(t, "key", u.Windows[2].Scope)
	assert.Equal(t, "ci", u.Windows[2].Key)
}

func (w Window) inUTC() Window {
	w.Start, w.End = w.Start.UTC(), w.End.UTC()
	return w
}

func TestKeyAndWildcardBudgets(t *testing.T) {
	clk := &testNow{t: time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)}
	b := newTestBudgets(t, acmeBudgets, NewMemoryStore(clk.now), clk)
	ctx := context.Background()
	assert.True(t, b.Applies("acme", ""))
	assert.True(t, b.Applies("someone", ""), `"*" covers other tenants`)
	assert.False(t, b.Applies("free", ""), "a listed tenant without budgets has none")
	r, err := b.Reserve(ctx, Request{Tenant: "acme", Key: "ci", Cost: Micro(0.4)})
	require.NoError(t, err)
	require.Len(t, r.Windows(), 3, "the tenant's two windows and the key's")
	_, err = b.Reserve(ctx, Request{Tenant: "acme", Key: "ci", Cost: Micro(0.2)})
	require.ErrorIs(t, err, ErrExceeded, "the key's hourly 0.5 is spent")
	_, err = b.Reserve(ctx, Request{Tenant: "acme", Key: "other", Cost: Micro(0.2)})
	require.NoError(t, err, "another key of the tenant only counts against the tenant")
	_, err = b.Reserve(ctx, Request{Tenant: "x", Cost: Micro(0.2)})
	require.NoError(t, err)
	_, err = b.Reserve(ctx, Request{Tenant: "y", Cost: Micro(0.2)})
	require.NoError(t, err, `each tenant "*" covers has its own budget`)
	_, err = b.Reserve(ctx, Request{Tenant: "x", Cost: Micro(0.1)})
	require.ErrorIs(t, err, ErrExceeded)
	r.Settle(Spend{Model: "m", Cost: Micro(0.1)})
	r4, err := b.Reserve(ctx, Request{Tenant: "acme", Key: "ci", Cost: Micro(0.2)})
	require.NoError(t, err)
	assert.Len(t, r4.Windows(), 3)
	clk.add(time.Hour)
	tenants, err := b.Tenants(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"acme"}, tenants, "tenants of \"*\" appear once they settle")
}

func TestNewWithoutBudgetsIsNil(t *testing.T) {
	assert.Nil(t, New(limitsOf(t, `tenants: [{name: a, requests_per_minute: 1}]`), Options{}))
	var b *Budgets
	assert.False(t, b.Applies("a", ""))
	r, err := b.Reserve(context.Background(), Request{Tenant: "a", Cost: 1})
	assert.NoError(t, err)
	assert.Nil(t, r)
	r.Settle(Spend{Cost: 1})
	assert.Nil(t, b.Reconfigured(limitsOf(t, acmeBudgets)))
}

func TestMicro(t *testing.T) {
	assert.Equal(t, int64(1_500_000), Micro(1.5))
	assert.Equal(t, int64(1), Micro(0.000001))
	assert.Equal(t, int64(0), Micro(-1))
	assert.Equal(t, MaxCost, Micro(1e300))
	assert.InDelta(t, 0.25, Amount(250000), 0)
}

// failingStore fails every call as an unreachable Redis does.
type failingStore struct{ *MemoryStore }

func (*failingStore) Reserve(context.Context, []Counter, int64) (Decision, error) {
	return Decision{}, ratelimit.ErrStoreUnavailable
}

func TestStoreDownFollowsFailOpen(t *testing.T) {
	clk := &testNow{t: time.Now()}
	closed := limitsOf(t, acmeBudgets)
	b := New(closed, Options{Store: &failingStore{NewMemoryStore(clk.now)}, Now: clk.now})
	_, err := b.Reserve(context.Background(), Request{Tenant: "acme", Cost: 1})
	require.ErrorIs(t, err, ratelimit.ErrStoreUnavailable, "fail_open off: refused")
	open := limitsOf(t, acmeBudgets)
	open.Redis = &config.Redis{FailOpen: true}
	b = b.Reconfigured(open)
	r, err := b.Reserve(context.Background(), Request{Tenant: "acme", Cost: 1})
	require.NoError(t, err, "fail_open: admitted")
	_, ok := r.Tightest()
	assert.False(t, ok, "no budget headers without a reservation")
	// The store answers settlements again: the cost is recorded.
	r.Settle(Spend{Model: "m", Cost: 5})
	u, err := b.Usage(context.Background(), "acme")
	require.NoError(t, err)
	assert.Equal(t, Amount(5), u.Windows[0].Spent)
}

// flakyProxy forwards TCP to a Redis and can go down and up again on
// the same address, as a restarted Redis does.
type flakyProxy struct {
	addr, target string
	mu           sync.Mutex
	lis          net.Listener
	conns        []net.Conn
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &flakyProxy{addr: lis.Addr().String(), target: target}
	p.serve(lis)
	t.Cleanup(p.down)
	return p
}

func (p *flakyProxy) serve(lis net.Listener) {
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

func (p *flakyProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		_ = p.lis.Close()
		p.lis = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *flakyProxy) up(t *testing.T) {
	lis, err := net.Listen("tcp", p.addr)
	require.NoError(t, err)
	p.serve(lis)
}

// A reservation made before an outage and settled during it is applied
// when Redis is back: the budget does not stay charged.
func TestRedisOutageLeaksNothing(t *testing.T) {
	real := newTestRedisStore(t, "STREAMGATE_TEST_REDIS", false)
	proxy := newFlakyProxy(t, os.Getenv("STREAMGATE_TEST_REDIS"))
	client := ratelimit.NewRedisClient(ratelimit.RedisClientOptions{Addr: proxy.addr, Timeout: 200 * time.Millisecond})
	defer client.Close()
	rs := ratelimit.NewRedisStore(client, ratelimit.RedisOptions{KeyPrefix: real.prefix[:len(real.prefix)-1], Timeout: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	store := NewRedisStore(rs)
	clk := &testNow{t: time.Now()}
	b := newTestBudgets(t, acmeBudgets, store, clk)
	ctx := context.Background()
	r, err := b.Reserve(ctx, Request{Tenant: "acme", Cost: Micro(0.9)})
	require.NoError(t, err)
	proxy.down()
	r.Settle(Spend{Model: "m", Cost: Micro(0.1)})
	assert.Equal(t, 1, store.Pending(), "kept for when Redis is back")
	_, err = b.Reserve(ctx, Request{Tenant: "acme", Cost: 1})
	require.ErrorIs(t, err, ratelimit.ErrStoreUnavailable)
	proxy.up(t)
	require.Eventually(t, func() bool {
		_, err := b.Reserve(ctx, Request{Tenant: "acme", Cost: Micro(0.8)})
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "0.9 was reserved, 0.1 spent: 0.8 fits once the settlement is applied")
	assert.Equal(t, 0, store.Pending())
}

func TestParseSeriesQuery(t *testing.T) {
	now := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	q, err := ParseSeriesQuery(url.Values{"tenant": {"acme"}}, now)
	require.NoError(t, err)
	assert.Equal(t, SeriesQuery{Tenant: "acme", Step: StepHour, From: now.Add(-24 * time.Hour), To: now}, q)
	q, err = ParseSeriesQuery(url.Values{"tenant": {"acme"}, "step": {"day"}, "to": {"2026-12-01T00:00:00Z"}}, now)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), q.From)
	for name, v := range map[string]url.Values{
		"no tenant":  {},
		"bad tenant": {"tenant": {"a b"}},
		"bad step":   {"tenant": {"a"}, "step": {"week"}},
		"bad from":   {"tenant": {"a"}, "from": {"yesterday"}},
		"bad to":     {"tenant": {"a"}, "to": {"1"}},
		"reversed":   {"tenant": {"a"}, "from": {"2026-12-02T00:00:00Z"}, "to": {"2026-12-01T00:00:00Z"}},
	} {
		_, err := ParseSeriesQuery(v, now)
		assert.True(t, errors.Is(err, errQuery), name)
	}
}

func FuzzParseSeriesQuery(f *testing.F) {
	f.Add("tenant=acme&step=hour")
	f.Add("tenant=a&step=day&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00+01:00")
	f.Add("tenant=%00&from=-1")
	now := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseSeriesQuery(v, now)
		if err != nil {
			require.ErrorIs(t, err, errQuery)
			return
		}
		require.True(t, ratelimit.ValidTenant(q.Tenant))
		require.True(t, q.From.Before(q.To))
		require.Contains(t, []string{StepHour, StepDay}, q.Step)
	})
}

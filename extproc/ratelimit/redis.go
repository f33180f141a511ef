package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// reserveScript applies every charge or none, atomically (Redis runs one
// script at a time), on the Redis server's clock.
//
// KEYS: one bucket key per charge.
// ARGV[1]: now in µs, or 0 for the server's TIME (non-zero only in tests).
// ARGV[2]: milliseconds added to each key's expiry (0 but in tests, whose
// clock is not the one Redis expires keys by).
// ARGV[2i+1], ARGV[2i+2]: the bucket's period and the charge's increment,
// both in µs.
//
// Bucket values are theoretical arrival times in µs since the Unix epoch;
// they stay below 2^53, so Lua's doubles hold them exactly. A key expires
// when its bucket is full again, so an idle tenant costs no memory.
//
// Returns {allowed (0|1), wait µs, now µs, tat_1 .. tat_n}: the tats after
// the charges if allowed, else as they were.
const reserveScript = `
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local slack = tonumber(ARGV[2])
local n = #KEYS
local tats, news = {}, {}
local allowed, wait = 1, 0
for i = 1, n do
  local period = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new = tat + tonumber(ARGV[2 * i + 2])
  local over = new - now - period
  if over > 0 then
    allowed = 0
    if over > wait then wait = over end
  end
  tats[i], news[i] = tat, new
end
local out = {allowed, wait, now}
for i = 1, n do
  local tat = tats[i]
  if allowed == 1 then
    tat = news[i]
    if tat > now then
      redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + slack)
    end
  end
  out[i + 3] = tat
end
return out
`

// adjustScript adds each signed increment to its bucket without a limit
// check; a refund never leaves a bucket fuller than full, and a debt is
// capped at a century. ARGV as for reserveScript. Returns the server's
// now in µs.
const adjustScript = `
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local slack = tonumber(ARGV[2])
local cap = now + 3153600000000000
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[2 * i + 2])
  if tat > cap then tat = cap end
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + slack)
  else
    redis.call('DEL', KEYS[i])
  end
end
return now
`

var (
	reserveLua = redis.NewScript(reserveScript)
	adjustLua  = redis.NewScript(adjustScript)
)

// RedisClient is what RedisStore needs of a go-redis client: any
// redis.UniversalClient, a single server's or a Redis Cluster's (a
// request's keys share one hash slot).
type RedisClient interface {
	redis.Scripter
	Ping(ctx context.Context) *redis.StatusCmd
}

var _ RedisClient = redis.UniversalClient(nil)

// RedisClientOptions say which Redis a client reaches.
type RedisClientOptions struct {
	// Addr is the server's address or, with Cluster, a seed node's.
	Addr string
	// Cluster selects a Redis Cluster client, which learns the other nodes
	// from Addr and follows MOVED and ASK redirections (not retries).
	Cluster bool
	// Password is sent with AUTH when not empty.
	Password string
	// DB is the database of a single server (always 0 on a cluster).
	DB int
	// Timeout bounds every call: dial, read and write.
	Timeout time.Duration
}

// NewRedisClient returns go-redis's universal client for o, tuned for
// admission: every call bounded by o.Timeout, no retries (a retried
// script could charge twice), one dial attempt per call, and no handshake
// beyond AUTH/SELECT. While dials keep failing the client fails calls at
// once and probes the server in the background once a second. The caller
// closes it.
func NewRedisClient(o RedisClientOptions) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                    []string{o.Addr},
		IsClusterMode:            o.Cluster,
		Password:                 o.Password,
		DB:                       o.DB,
		DialTimeout:              o.Timeout,
		ReadTimeout:              o.Timeout,
		WriteTimeout:             o.Timeout,
		ContextTimeoutEnabled:    true,
		MaxRetries:               -1,
		DialerRetries:            1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	// KeyPrefix starts every key, followed by ":"; it must not contain
	// braces. Empty means "streamgate".
	KeyPrefix string
	// Timeout bounds each call to Redis (default 50ms).
	Timeout time.Duration
	// FailOpen is only reported in the outage log line; the Limiter decides
	// (and tells the store of a reloaded value when Activated).
	FailOpen bool
	// Log receives one line when an outage starts and one when it ends
	// (default slog.Default()).
	Log *slog.Logger
	// Metrics counts failed calls and exposes the outage state; nil records nothing.
	Metrics *StoreMetrics
}

// RedisStore keeps GCRA buckets in Redis so that several gateway
// processes share one limit. Each call is one Lua script run: atomic on the
// server and timed by the server's clock, so replicas with skewed clocks
// still agree. Keys are <prefix>:{tenant}:..., so one request's buckets
// share a Redis Cluster hash slot. Safe for concurrent use.
//
// A call that fails (Redis unreachable, slower than Timeout) returns an
// error wrapping ErrStoreUnavailable; the store counts it and logs only the
// first failure of an outage and the recovery.
type RedisStore struct {
	client  RedisClient
	prefix  string
	timeout time.Duration
	health  *storeHealth
	// clock replaces the server's TIME in tests (nil in production), and
	// ttlSlack keeps keys alive while such a clock is far from Redis's.
	clock    Clock
	ttlSlack time.Duration
	// leases, when set (ShareConcurrency), hold the concurrency slots of
	// every Limiter on this store.
	leases *Leases
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store using client, which the caller owns and closes.
func NewRedisStore(client RedisClient, opts RedisOptions) *RedisStore {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "streamgate"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 50 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &RedisStore{
		client:  client,
		prefix:  opts.KeyPrefix + ":",
		timeout: opts.Timeout,
		health:  &storeHealth{log: opts.Log, metrics: opts.Metrics},
	}
	s.setFailOpen(opts.FailOpen)
	return s
}

// setFailOpen words the outage log line for fail_open (Limiter.Activate).
func (s *RedisStore) setFailOpen(open bool) { s.health.failOpen.Store(open) }

// Ping checks that Redis answers, recording an outage like any other call.
func (s *RedisStore) Ping(ctx context.Context) error {
	return s.call(ctx, func(ctx context.Context) error { return s.client.Ping(ctx).Err() })
}

// Reserve applies all charges or none in one script run. On an error the
// charges were most likely not applied; a call that timed out after Redis
// ran the script did apply them, and they then refill within one period
// as nobody refunds them.
func (s *RedisStore) Reserve(ctx context.Context, charges []Charge) (Decision, error) {
	if len(charges) == 0 {
		return Decision{Allowed: true}, nil
	}
	keys, args := s.encode(charges)
	var vals []int64
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		vals, err = reserveLua.Run(ctx, s.client, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		return Decision{}, fmt.Errorf("cannot reserve rate limit buckets: %w", err)
	}
	if len(vals) != 3+len(charges) {
		return Decision{}, fmt.Errorf("cannot reserve rate limit buckets: %w: script returned %d values for %d charges",
			ErrStoreUnavailable, len(vals), len(charges))
	}
	var g gcra
	now := vals[2] * int64(time.Microsecond)
	d := Decision{Allowed: vals[0] == 1, States: make([]State, len(charges))}
	if !d.Allowed {
		d.RetryAfter = time.Duration(vals[1]) * time.Microsecond
	}
	for i, c := range charges {
		d.States[i] = g.state(vals[3+i]*int64(time.Microsecond), now, c.Rule)
	}
	return d, nil
}

// Adjust adds each charge's Cost (negative to refund) in one script run.
func (s *RedisStore) Adjust(ctx context.Context, charges []Charge) error {
	if len(charges) == 0 {
		return nil
	}
	keys, args := s.encode(charges)
	err := s.call(ctx, func(ctx context.Context) error {
		return adjustLua.Run(ctx, s.client, keys, args...).Err()
	})
	if err != nil {
		return fmt.Errorf("cannot adjust rate limit buckets: %w", err)
	}
	return nil
}

// encode builds the scripts' KEYS and ARGV. Increments are rounded down to
// whole µs, as the memory store rounds them to whole ns: n charges of
// limit/n units always fit.
func (s *RedisStore) encode(charges []Charge) ([]string, []any) {
	keys := make([]string, len(charges))
	args := make([]any, 2, 2+2*len(charges))
	args[0], args[1] = int64(0), int64(0)
	if s.clock != nil {
		args[0], args[1] = s.clock.Now().UnixMicro(), s.ttlSlack.Milliseconds()
	}
	for i, c := range charges {
		keys[i] = s.prefix + c.Key
		inc := increment(c.Cost, c.Rule) / time.Microsecond
		if c.Cost < 0 {
			inc = -(increment(-c.Cost, c.Rule) / time.Microsecond)
		}
		args = append(args, int64(c.Rule.Period/time.Microsecond), int64(inc))
	}
	return keys, args
}

// call runs f with the store's timeout and records the outcome. A caller
// whose own context ended is not an outage.
func (s *RedisStore) call(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := f(cctx)
	switch {
	case err == nil:
		s.health.ok()
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, ctx.Err())
	default:
		s.health.failed(err)
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
}

// Do runs f on the store's client within the store's timeout and records
// the outcome like the store's own calls: spend budgets (extproc/budget)
// share the rate limits' connection, outage log and metrics. Errors wrap
// ErrStoreUnavailable.
func (s *RedisStore) Do(ctx context.Context, f func(ctx context.Context, c RedisClient) error) error {
	return s.call(ctx, func(ctx context.Context) error { return f(ctx, s.client) })
}

// Prefix is what every key of the store starts with, ":" included.
func (s *RedisStore) Prefix() string { return s.prefix }

package budget

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// maxPending bounds the settlements a RedisStore keeps while Redis is
// unreachable, to apply when it is back; past it they are dropped and
// counted.
const maxPending = 8192

// reserveScript charges ARGV[1] to every counter if each has room, else
// to none. Per counter i (base b = 1 + 4(i-1)): ARGV[b+1] limit, ARGV[b+2]
// warn (0: none), ARGV[b+3] expiry (calendar: PEXPIREAT ms; rolling: PEXPIRE
// ms), ARGV[b+4] slice (0: calendar). Rolling counters keep slices in
// fields s<idx>; those out of the window are deleted here. Returns {allowed,
// then per counter spent, oldest slice (-1: none), warned}.
const reserveScript = `
local cost = tonumber(ARGV[1])
local n = #KEYS
local spent, oldest = {}, {}
local ok = 1
for i = 1, n do
  local b = 1 + (i - 1) * 4
  local slice = tonumber(ARGV[b + 4])
  local s, old = 0, -1
  if slice == 0 then
    s = tonumber(redis.call('HGET', KEYS[i], 't') or '0')
  else
    local f = redis.call('HGETALL', KEYS[i])
    for j = 1, #f, 2 do
      if string.sub(f[j], 1, 1) == 's' then
        local idx = tonumber(string.sub(f[j], 2))
        if idx <= slice - 60 then
          redis.call('HDEL', KEYS[i], f[j])
        else
          local v = tonumber(f[j + 1])
          s = s + v
          if v > 0 and (old < 0 or idx < old) then old = idx end
        end
      end
    end
  end
  spent[i], oldest[i] = s, old
  if s + cost > tonumber(ARGV[b + 1]) then ok = 0 end
end
local out = {ok}
for i = 1, n do
  local b = 1 + (i - 1) * 4
  local warn, exp, slice = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local warned = 0
  if ok == 1 then
    spent[i] = spent[i] + cost
    if slice == 0 then
      redis.call('HINCRBY', KEYS[i], 't', cost)
      redis.call('PEXPIREAT', KEYS[i], exp)
      if warn > 0 and spent[i] >= warn then warned = redis.call('HSETNX', KEYS[i], 'w', '1') end
    else
      redis.call('HINCRBY', KEYS[i], 's' .. slice, cost)
      redis.call('PEXPIRE', KEYS[i], exp)
      if warn > 0 and spent[i] >= warn then
        local w = tonumber(redis.call('HGET', KEYS[i], 'w') or '-1')
        if w < 0 or slice - w >= 60 then
          redis.call('HSET', KEYS[i], 'w', slice)
          warned = 1
        end
      end
    end
  end
  out[#out + 1] = spent[i]
  out[#out + 1] = oldest[i]
  out[#out + 1] = warned
end
return out
`

// settleScript applies a settlement. KEYS: the n counters, then the
// series buckets. ARGV[1] n, ARGV[2] delta, ARGV[3] cost, ARGV[4] input,
// ARGV[5] output, ARGV[6] the model, ARGV[7] the series field suffix (key
// \x1f model), ARGV[8] "1" to record the spend per model (a refund does
// not); per counter i (base b = 8 + 3(i-1)): warn, slice (0: calendar),
// expiry (as for reserveScript); then per bucket j: its PEXPIREAT ms. A
// counter that is gone is left alone by a refund and created by a charge
// (a request admitted unreserved while Redis was down; a window already
// over expires at once); none goes below zero. Returns the warned flags.
const settleScript = `
local n, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
local record = ARGV[8] == '1'
local out = {}
for i = 1, n do
  local b = 8 + (i - 1) * 3
  local warn, slice = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local warned = 0
  local exists = redis.call('EXISTS', KEYS[i]) == 1
  if exists or delta > 0 then
    local field = 't'
    if slice ~= 0 then field = 's' .. slice end
    local v = redis.call('HINCRBY', KEYS[i], field, delta)
    if not exists then
      if slice == 0 then redis.call('PEXPIREAT', KEYS[i], ARGV[b + 3]) else redis.call('PEXPIRE', KEYS[i], ARGV[b + 3]) end
    end
    if v < 0 then redis.call('HSET', KEYS[i], field, 0) end
    if slice == 0 and record then
      redis.call('HINCRBY', KEYS[i], 'c|' .. ARGV[6], ARGV[3])
      redis.call('HINCRBY', KEYS[i], 'i|' .. ARGV[6], ARGV[4])
      redis.call('HINCRBY', KEYS[i], 'o|' .. ARGV[6], ARGV[5])
      redis.call('HINCRBY', KEYS[i], 'n|' .. ARGV[6], 1)
      if delta > 0 and warn > 0 and v >= warn then warned = redis.call('HSETNX', KEYS[i], 'w', '1') end
    end
  end
  out[i] = warned
end
local nb = 8 + n * 3
for j = n + 1, #KEYS do
  redis.call('HINCRBY', KEYS[j], 'c|' .. ARGV[7], ARGV[3])
  redis.call('HINCRBY', KEYS[j], 'i|' .. ARGV[7], ARGV[4])
  redis.call('HINCRBY', KEYS[j], 'o|' .. ARGV[7], ARGV[5])
  redis.call('HINCRBY', KEYS[j], 'n|' .. ARGV[7], 1)
  redis.call('PEXPIREAT', KEYS[j], ARGV[nb + j - n])
end
return out
`

// readScript returns every key's hash (HGETALL), in order.
const readScript = `
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
`

// seenScript records a spending tenant (ARGV[1]) at ARGV[2] (unix s) in
// the sorted set KEYS[1], dropping those older than ARGV[3].
const seenScript = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
return 1
`

// tenantsScript lists the members of KEYS[1] scored ARGV[1] or later.
const tenantsScript = `return redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')`

var (
	reserveLua = redis.NewScript(reserveScript)
	settleLua  = redis.NewScript(settleScript)
	readLua    = redis.NewScript(readScript)
	seenLua    = redis.NewScript(seenScript)
	tenantsLua = redis.NewScript(tenantsScript)
)

// RedisStore keeps counters in Redis, shared by every gateway replica on
// it, through the rate limits' store (its connection, timeout, outage log
// and metrics). Each call is one script run on the keys of one tenant,
// which share a hash slot. Calendar windows are computed by the gateways
// (their clocks should agree to well under a slice; NTP does).
//
// A settlement that cannot reach Redis because it is down (not one that
// timed out: it may have run) is kept, up to maxPending, and applied
// before the next call once Redis answers again, so reservations made
// before an outage do not stay charged.
type RedisStore struct {
	rs      *ratelimit.RedisStore
	prefix  string
	mu      sync.Mutex
	pending []Settlement
	// onDrop counts settlements dropped or lost (may be nil).
	onDrop func(n int)
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store on rs's client and key prefix.
func NewRedisStore(rs *ratelimit.RedisStore) *RedisStore {
	return &RedisStore{rs: rs, prefix: rs.Prefix()}
}

func (s *RedisStore) keys(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = s.prefix + k
	}
	return out
}

// Reserve charges cost to every counter or none, in one script run.
func (s *RedisStore) Reserve(ctx context.Context, counters []Counter, cost int64) (Decision, error) {
	s.flush(ctx)
	keys := make([]string, len(counters))
	args := make([]any, 1, 1+4*len(counters))
	args[0] = cost
	for i, c := range counters {
		keys[i] = s.prefix + c.Key
		args = append(args, c.Limit, c.Warn, c.expiry(), c.Slice)
	}
	var vals []int64
	err := s.rs.Do(ctx, func(ctx context.Context, c ratelimit.RedisClient) error {
		var err error
		vals, err = reserveLua.Run(ctx, c, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		return Decision{}, fmt.Errorf("cannot reserve budget: %w", err)
	}
	if len(vals) != 1+3*len(counters) {
		return Decision{}, fmt.Errorf("cannot reserve budget: %w: script returned %d values", ratelimit.ErrStoreUnavailable, len(vals))
	}
	d := Decision{Allowed: vals[0] == 1, States: make([]State, len(counters))}
	for i := range counters {
		v := vals[1+3*i:]
		d.States[i] = State{Spent: v[0], Oldest: v[1], Warned: v[2] == 1}
	}
	return d, nil
}

// Settle applies st in one script run; see RedisStore for outages.
func (s *RedisStore) Settle(ctx context.Context, st Settlement) ([]bool, error) {
	s.flush(ctx)
	warned, err := s.settle(ctx, st)
	if err != nil && unsent(err) {
		s.keep(st)
	} else if err != nil && s.onDrop != nil {
		s.onDrop(1)
	}
	return warned, err
}

func (s *RedisStore) settle(ctx context.Context, st Settlement) ([]bool, error) {
	n := len(st.Counters)
	keys := make([]string, 0, n+len(st.Series))
	args := make([]any, 0, 8+3*n+len(st.Series))
	record := 1
	if st.Refund {
		record = 0
	}
	args = append(args, n, st.Delta, st.Spend.Cost, st.Spend.Input, st.Spend.Output, st.Spend.Model, st.Spend.Key+"\x1f"+st.Spend.Model, record)
	for _, c := range st.Counters {
		keys = append(keys, s.prefix+c.Key)
		args = append(args, c.Warn, c.Slice, c.expiry())
	}
	for _, b := range st.Series {
		keys = append(keys, s.prefix+b.Key)
		args = append(args, b.ExpireAt.UnixMilli())
	}
	var vals []int64
	err := s.rs.Do(ctx, func(ctx context.Context, c ratelimit.RedisClient) error {
		var err error
		vals, err = settleLua.Run(ctx, c, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot settle budget: %w", err)
	}
	warned := make([]bool, n)
	for i := range min(n, len(vals)) {
		warned[i] = vals[i] == 1
	}
	return warned, nil
}

// unsent reports whether err means the call never reached Redis (refused
// or failed dial), so retrying it cannot charge twice.
func unsent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, redis.ErrClosed) || strings.Contains(err.Error(), "connection refused")
}

// keep queues st for flush, dropping it when maxPending wait already.
func (s *RedisStore) keep(st Settlement) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= maxPending {
		if s.onDrop != nil {
			s.onDrop(1)
		}
		return
	}
	s.pending = append(s.pending, st)
}

// Pending is how many settlements wait for Redis.
func (s *RedisStore) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// flush applies the settlements kept during an outage, stopping at the
// first that still cannot be sent. Costs one mutex when none wait.
func (s *RedisStore) flush(ctx context.Context) {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	for i, st := range batch {
		if _, err := s.settle(ctx, st); err != nil {
			if unsent(err) {
				s.mu.Lock()
				s.pending = append(batch[i:], s.pending...)
				s.mu.Unlock()
				return
			}
			if s.onDrop != nil {
				s.onDrop(1)
			}
		}
	}
}

// Read returns the counters' usage in one script run (one tenant's keys).
func (s *RedisStore) Read(ctx context.Context, counters []Counter) ([]CounterUsage, error) {
	ks := make([]string, len(counters))
	for i, c := range counters {
		ks[i] = c.Key
	}
	hashes, err := s.hgetall(ctx, ks)
	if err != nil {
		return nil, err
	}
	out := make([]CounterUsage, len(counters))
	for i, c := range counters {
		out[i] = counterUsage(c, hashes[i])
	}
	return out, nil
}

// Series returns each bucket's usage (one tenant's keys).
func (s *RedisStore) Series(ctx context.Context, keys []string) ([][]Usage, error) {
	hashes, err := s.hgetall(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([][]Usage, len(keys))
	for i, h := range hashes {
		out[i] = usageFields(h, true)
	}
	return out, nil
}

func (s *RedisStore) hgetall(ctx context.Context, ks []string) ([]map[string]string, error) {
	if len(ks) == 0 {
		return nil, nil
	}
	var raw []any
	err := s.rs.Do(ctx, func(ctx context.Context, c ratelimit.RedisClient) error {
		var err error
		raw, err = readLua.Run(ctx, c, s.keys(ks)).Slice()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read budgets: %w", err)
	}
	out := make([]map[string]string, len(ks))
	for i := range min(len(raw), len(ks)) {
		fields, _ := raw[i].([]any)
		h := make(map[string]string, len(fields)/2)
		for j := 0; j+1 < len(fields); j += 2 {
			k, _ := fields[j].(string)
			v, _ := fields[j+1].(string)
			h[k] = v
		}
		out[i] = h
	}
	return out, nil
}

// counterUsage reads a counter's hash.
func counterUsage(c Counter, h map[string]string) CounterUsage {
	u := CounterUsage{Oldest: -1}
	if !c.rolling() {
		u.Spent, _ = strconv.ParseInt(h["t"], 10, 64)
		u.Models = usageFields(h, false)
		return u
	}
	for k, v := range h {
		idx, err := strconv.ParseInt(strings.TrimPrefix(k, "s"), 10, 64)
		if !strings.HasPrefix(k, "s") || err != nil || idx <= c.Slice-rollingSlices {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		u.Spent += n
		if n > 0 && (u.Oldest < 0 || idx < u.Oldest) {
			u.Oldest = idx
		}
	}
	return u
}

// usageFields reads the c|, i|, o|, n| fields of a hash; withKey: their
// names are key \x1f model (series), else the model alone.
func usageFields(h map[string]string, withKey bool) []Usage {
	byName := map[string]*Usage{}
	for k, v := range h {
		kind, name, ok := strings.Cut(k, "|")
		if !ok || len(kind) != 1 {
			continue
		}
		u := byName[name]
		if u == nil {
			u = &Usage{Model: name}
			if withKey {
				u.Key, u.Model, _ = strings.Cut(name, "\x1f")
			}
			byName[name] = u
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch kind {
		case "c":
			u.Cost = n
		case "i":
			u.Input = n
		case "o":
			u.Output = n
		case "n":
			u.Requests = n
		}
	}
	out := make([]Usage, 0, len(byName))
	for _, u := range byName {
		out = append(out, *u)
	}
	sortUsage(out)
	return out
}

// tenantsKey is the sorted set of spending tenants (no hash tag: its own slot).
func (s *RedisStore) tenantsKey() string { return s.prefix + "budget-tenants" }

// Seen records tenant in the set of spending tenants, dropping those not
// seen for a year.
func (s *RedisStore) Seen(ctx context.Context, tenant string, at time.Time) error {
	return s.rs.Do(ctx, func(ctx context.Context, c ratelimit.RedisClient) error {
		return seenLua.Run(ctx, c, []string{s.tenantsKey()}, tenant, at.Unix(), at.Add(-366*24*time.Hour).Unix()).Err()
	})
}

// Tenants lists the tenants seen since since.
func (s *RedisStore) Tenants(ctx context.Context, since time.Time) ([]string, error) {
	var out []string
	err := s.rs.Do(ctx, func(ctx context.Context, c ratelimit.RedisClient) error {
		var err error
		out, err = tenantsLua.Run(ctx, c, []string{s.tenantsKey()}, since.Unix()).StringSlice()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list budget tenants: %w", err)
	}
	return out, nil
}

// expiry is a counter's expiry as the scripts take it: a calendar
// counter's PEXPIREAT, a rolling one's PEXPIRE, in ms.
func (c Counter) expiry() int64 {
	if c.rolling() {
		return c.TTL.Milliseconds()
	}
	return c.ExpireAt.UnixMilli()
}

package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A concurrency pool shared through Redis is three keys with one hash tag
// (the tenant's, or the backend's), so a Redis Cluster keeps them, and all
// of one tenant's pools, in one slot:
//
//	<pool>:h  hash: "r|<replica>|<tenant>" -> slots that replica holds for
//	          that tenant; "t|<tenant>" -> the tenant's slots over live
//	          replicas; "n" -> all slots held.
//	<pool>:z  sorted set: replica -> when its leases expire (ms, Redis TIME),
//	          pushed forward by the replica's heartbeat.
//	<pool>:w  sorted set: tenant -> until when it waits for the pool (ms):
//	          the demand fair shares are computed from (backend pools);
//	          while it exists, a script that frees a slot publishes the
//	          pool's name on <prefix>:freed, which every replica's waiting
//	          requests listen to.
//
// A replica whose expiry passed is pruned by the next script that touches
// the pool: its fields leave "t|" and "n". Tenant names never hold '|';
// replica ids are built without it (newReplicaID).

// leaseNow is the scripts' preamble: ARGV[1] is now in ms, or 0 for the
// server's TIME (non-zero only in tests).
const leaseNow = `
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// leasePrune drops the leases of replicas whose expiry has passed.
const leasePrune = `
local function prune(h, z)
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #dead == 0 then return end
  local all = redis.call('HGETALL', h)
  for _, r in ipairs(dead) do
    local p = 'r|' .. r .. '|'
    for j = 1, #all, 2 do
      local f = all[j]
      if string.sub(f, 1, #p) == p then
        local c = tonumber(all[j + 1])
        local t = 't|' .. string.sub(f, #p + 1)
        if redis.call('HINCRBY', h, t, -c) <= 0 then redis.call('HDEL', h, t) end
        if redis.call('HINCRBY', h, 'n', -c) <= 0 then redis.call('HDEL', h, 'n') end
        redis.call('HDEL', h, f)
      end
    end
    redis.call('ZREM', z, r)
  end
end
`

// leaseAcquireScript takes one slot in every pool or in none.
//
// KEYS: h, z, w of each pool.
// ARGV[1] now; ARGV[2] replica; ARGV[3] tenant; ARGV[4] lease TTL ms;
// ARGV[5] demand TTL ms; ARGV[6] 1 when more of this tenant's requests
// wait behind this one on this replica; then per pool its limit and 1 when
// fair shares apply (a backend pool), else 0.
//
// A fair pool refuses a tenant holding its share, ceil(limit / tenants
// waiting for the pool, itself included), while another tenant waits. A
// refusal records the tenant's demand on the pool that refused it (which
// also tells releases to publish); a grant with nobody behind withdraws it.
//
// Returns {1} or {0, index of the pool that refused (1-based), 1 full | 2 share}.
const leaseAcquireScript = leaseNow + leasePrune + `
local replica, tenant = ARGV[2], ARGV[3]
local ttl, dttl, more = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local n = #KEYS / 3
for i = 1, n do
  local h, z, w = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local limit, fair = tonumber(ARGV[5 + 2 * i]), ARGV[6 + 2 * i]
  prune(h, z)
  local why = 0
  if tonumber(redis.call('HGET', h, 'n') or '0') >= limit then
    why = 1
  elseif fair == '1' then
    redis.call('ZREMRANGEBYSCORE', w, '-inf', now)
    local others = redis.call('ZCARD', w)
    if redis.call('ZSCORE', w, tenant) then others = others - 1 end
    if others > 0 then
      local share = math.ceil(limit / (others + 1))
      if tonumber(redis.call('HGET', h, 't|' .. tenant) or '0') >= share then why = 2 end
    end
  end
  if why > 0 then
    redis.call('ZADD', w, now + dttl, tenant)
    redis.call('PEXPIRE', w, 2 * dttl)
    return {0, i, why}
  end
end
for i = 1, n do
  local h, z, w = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  redis.call('HINCRBY', h, 'r|' .. replica .. '|' .. tenant, 1)
  redis.call('HINCRBY', h, 't|' .. tenant, 1)
  redis.call('HINCRBY', h, 'n', 1)
  redis.call('ZADD', z, now + ttl, replica)
  redis.call('PEXPIRE', h, 2 * ttl)
  redis.call('PEXPIRE', z, 2 * ttl)
  if more == '0' then redis.call('ZREM', w, tenant) end
end
return {1}
`

// leaseReleaseScript gives back one slot in every pool, if this replica
// still holds it there (a pruned replica holds nothing), and publishes
// the pool's name on the channel when someone waits for it.
//
// KEYS: h, w of each pool. ARGV[1] replica; ARGV[2] tenant; ARGV[3] channel.
const leaseReleaseScript = `
local f = 'r|' .. ARGV[1] .. '|' .. ARGV[2]
local t = 't|' .. ARGV[2]
for i = 1, #KEYS / 2 do
  local h, w = KEYS[2 * i - 1], KEYS[2 * i]
  local c = tonumber(redis.call('HGET', h, f) or '0')
  if c > 0 then
    if c == 1 then redis.call('HDEL', h, f) else redis.call('HINCRBY', h, f, -1) end
    if redis.call('HINCRBY', h, t, -1) <= 0 then redis.call('HDEL', h, t) end
    if redis.call('HINCRBY', h, 'n', -1) <= 0 then redis.call('HDEL', h, 'n') end
    if redis.call('EXISTS', w) == 1 then redis.call('PUBLISH', ARGV[3], string.sub(h, 1, -3)) end
  end
end
return 1
`

// leaseHeartbeatScript sets what this replica holds in one pool to its own
// count (which corrects a release or an acquisition whose reply was lost)
// and pushes its expiry forward; with nothing held it leaves the pool.
//
// KEYS: h, z, w. ARGV[1] now; ARGV[2] replica; ARGV[3] lease TTL ms;
// ARGV[4] channel; then pairs tenant, count (0: drop the field). A count
// lowered frees slots: published as a release is.
const leaseHeartbeatScript = leaseNow + leasePrune + `
local h, z, w = KEYS[1], KEYS[2], KEYS[3]
local replica, ttl = ARGV[2], tonumber(ARGV[3])
prune(h, z)
local total, freed = 0, false
for k = 5, #ARGV, 2 do
  local f = 'r|' .. replica .. '|' .. ARGV[k]
  local c = tonumber(ARGV[k + 1])
  local d = c - tonumber(redis.call('HGET', h, f) or '0')
  if d < 0 then freed = true end
  if d ~= 0 then
    local t = 't|' .. ARGV[k]
    if redis.call('HINCRBY', h, t, d) <= 0 then redis.call('HDEL', h, t) end
    if redis.call('HINCRBY', h, 'n', d) <= 0 then redis.call('HDEL', h, 'n') end
  end
  if c > 0 then redis.call('HSET', h, f, c) else redis.call('HDEL', h, f) end
  total = total + c
end
if total > 0 then
  redis.call('ZADD', z, now + ttl, replica)
  redis.call('PEXPIRE', h, 2 * ttl)
  redis.call('PEXPIRE', z, 2 * ttl)
else
  redis.call('ZREM', z, replica)
end
if freed and redis.call('EXISTS', w) == 1 then redis.call('PUBLISH', ARGV[4], string.sub(h, 1, -3)) end
return total
`

var (
	leaseAcquireLua   = redis.NewScript(leaseAcquireScript)
	leaseReleaseLua   = redis.NewScript(leaseReleaseScript)
	leaseHeartbeatLua = redis.NewScript(leaseHeartbeatScript)
)

// Why a pool refused a lease (leaseAcquireScript).
const (
	refusedFull  = 1
	refusedShare = 2
)

// leasePool is one pool of a lease script call: its Redis key stem and cap.
type leasePool struct {
	key   string // <prefix>:c:{tenant}... or <prefix>:b:{backend}
	limit int
	fair  bool
}

// acquireLeases runs leaseAcquireScript for pools (one hash slot). It
// returns whether all were granted, else the index of the pool that
// refused and why.
func (s *RedisStore) acquireLeases(ctx context.Context, replica, tenant string, ttl, demand time.Duration, more bool, pools []leasePool) (bool, int, int, error) {
	keys := make([]string, 0, 3*len(pools))
	args := make([]any, 0, 6+2*len(pools))
	args = append(args, s.nowMillis(), replica, tenant, ttl.Milliseconds(), demand.Milliseconds(), flag(more))
	for _, p := range pools {
		keys = append(keys, p.key+":h", p.key+":z", p.key+":w")
		args = append(args, p.limit, flag(p.fair))
	}
	var vals []int64
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		vals, err = leaseAcquireLua.Run(ctx, s.client, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		return false, 0, 0, fmt.Errorf("cannot acquire concurrency leases: %w", err)
	}
	if len(vals) == 1 && vals[0] == 1 {
		return true, 0, 0, nil
	}
	if len(vals) != 3 || vals[1] < 1 || int(vals[1]) > len(pools) {
		return false, 0, 0, fmt.Errorf("cannot acquire concurrency leases: %w: script returned %v", ErrStoreUnavailable, vals)
	}
	return false, int(vals[1]) - 1, int(vals[2]), nil
}

// releaseLeases runs leaseReleaseScript for pools (one hash slot).
func (s *RedisStore) releaseLeases(ctx context.Context, replica, tenant string, pools []leasePool) error {
	keys := make([]string, 0, 2*len(pools))
	for _, p := range pools {
		keys = append(keys, p.key+":h", p.key+":w")
	}
	err := s.call(ctx, func(ctx context.Context) error {
		return leaseReleaseLua.Run(ctx, s.client, keys, replica, tenant, s.freedChannel()).Err()
	})
	if err != nil {
		return fmt.Errorf("cannot release concurrency leases: %w", err)
	}
	return nil
}

// heartbeatLeases runs leaseHeartbeatScript for one pool: counts are what
// this replica holds there per tenant (0: no longer).
func (s *RedisStore) heartbeatLeases(ctx context.Context, replica, pool string, ttl time.Duration, counts map[string]int) error {
	args := make([]any, 0, 4+2*len(counts))
	args = append(args, s.nowMillis(), replica, ttl.Milliseconds(), s.freedChannel())
	for t, c := range counts {
		args = append(args, t, c)
	}
	err := s.call(ctx, func(ctx context.Context) error {
		return leaseHeartbeatLua.Run(ctx, s.client, []string{pool + ":h", pool + ":z", pool + ":w"}, args...).Err()
	})
	if err != nil {
		return fmt.Errorf("cannot renew concurrency leases: %w", err)
	}
	return nil
}

// poolHeld reads how many slots of pool are held in all and by tenant,
// as the scripts count them (tests and the e2e report).
func (s *RedisStore) poolHeld(ctx context.Context, pool, tenant string) (total, mine int, err error) {
	c, ok := s.client.(redis.Cmdable)
	if !ok {
		return 0, 0, fmt.Errorf("cannot read pool %s: client cannot run HMGET", pool)
	}
	vals, err := c.HMGet(ctx, pool+":h", "n", "t|"+tenant).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read pool %s: %w", pool, err)
	}
	atoi := func(v any) int {
		str, _ := v.(string)
		n, _ := strconv.Atoi(str)
		return n
	}
	return atoi(vals[0]), atoi(vals[1]), nil
}

// freedChannel is where lease scripts publish the name of a pool that
// freed a slot while someone waited for it.
func (s *RedisStore) freedChannel() string { return s.prefix + "freed" }

// nowMillis is the scripts' ARGV[1]: 0 (the server's TIME) but in tests.
func (s *RedisStore) nowMillis() int64 {
	if s.clock != nil {
		return s.clock.Now().UnixMilli()
	}
	return 0
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

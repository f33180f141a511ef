package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/extproc/budget"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// newLimits builds the limiter the config asks for. A Redis store's client
// is closed when ctx ends; an unreachable Redis at startup is logged (as an
// outage) but does not stop the gateway.
func newLimits(ctx context.Context, cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*extproc.Limits, error) {
	if cfg.Limits.Store != config.LimitStoreRedis {
		return extproc.NewLimits(cfg, nil, reg, extproc.WithBudgetLog(log))
	}
	rc := cfg.Limits.Redis
	var password string
	if rc.PasswordEnv != "" {
		password = os.Getenv(rc.PasswordEnv)
		if password == "" {
			return nil, fmt.Errorf("cannot build the redis store: environment variable %s is empty or unset", rc.PasswordEnv)
		}
	}
	redis.SetLogger(redisLogger{log})
	client := ratelimit.NewRedisClient(ratelimit.RedisClientOptions{
		Addr: rc.Address, Cluster: rc.Cluster, Password: password, DB: rc.DB, Timeout: rc.Timeout,
	})
	context.AfterFunc(ctx, func() { _ = client.Close() })
	store := ratelimit.NewRedisStore(client, ratelimit.RedisOptions{
		KeyPrefix: rc.KeyPrefix,
		Timeout:   rc.Timeout,
		FailOpen:  rc.FailOpen,
		Log:       log,
		Metrics:   ratelimit.NewStoreMetrics(reg),
	})
	replica := ""
	if rc.Concurrency == config.ConcurrencyShared {
		replica = store.ShareConcurrency(ctx, ratelimit.LeaseOptions{TTL: rc.LeaseTTL, Registerer: reg}).Replica()
	}
	if err := store.Ping(ctx); err == nil {
		log.Info("rate limits shared through redis", "address", rc.Address, "cluster", rc.Cluster, "db", rc.DB, "fail_open", rc.FailOpen,
			"concurrency", rc.Concurrency, "lease_ttl", rc.LeaseTTL.String(), "replica", replica)
	}
	return extproc.NewLimits(cfg, store, reg, extproc.WithBudgetStore(budget.NewRedisStore(store)), extproc.WithBudgetLog(log))
}

// redisLogger sends the Redis client's own messages (one per failed dial,
// among others) to debug level: the store logs outages once.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}

// liveLimits builds each config's limits on the state of the first ones
// built (extproc.Limits.Reload), so buckets, held slots and the queue
// survive a reload. The store kind and Redis connection are restart-only
// (config.RestartOnly): a reload never needs a new store.
type liveLimits struct {
	// base is the first Limits built (nil before any); its limiter state
	// is shared by every later one.
	base *extproc.Limits
	reg  prometheus.Registerer
}

// prepare returns the Limits of c (nil when c has no limits) without
// putting them in force: Server.Update does. A config that brings limits
// to a process started without them gets a memory store.
func (l *liveLimits) prepare(c *config.Config) (*extproc.Limits, error) {
	if c.Limits == nil {
		return nil, nil
	}
	if l.base == nil {
		lim, err := extproc.NewLimits(c, nil, l.reg)
		if err != nil {
			return nil, err
		}
		// Kept even if this reload fails later: it holds nothing yet, and
		// its metrics are registered once.
		l.base = lim
		return lim, nil
	}
	return l.base.Reload(c)
}

package config

import (
	"fmt"
	"strings"
	"time"
)

// Defaults of the limits section.
const (
	DefaultLimitsTenantHeader   = "x-tenant"
	DefaultTenant               = "anonymous"
	DefaultOutputTokens         = 1024
	DefaultQueueSize            = 1024
	DefaultQueueMaxWait         = time.Second
	DefaultRedisTimeout         = 50 * time.Millisecond
	DefaultMaxExactBytes        = 8 << 10
	AnyTenant                   = "*"
	LimitStoreMemory            = "memory"
	LimitStoreRedis             = "redis"
	queueMessageTimeoutHeadroom = 500 * time.Millisecond
)

// Limits is the limits section: who may send how much. Absent means no
// limits and no x-ratelimit headers.
type Limits struct {
	// TenantHeader is the request header naming the tenant on an open
	// gateway (default x-tenant); with auth on, the verified tenant is
	// limited and this header is ignored.
	TenantHeader string `yaml:"tenant_header"`
	// DefaultTenant is the tenant of requests without that header (default anonymous).
	DefaultTenant string `yaml:"default_tenant"`
	// DefaultOutputTokens is reserved for output when a request sets no
	// max_tokens (default 1024).
	DefaultOutputTokens int64 `yaml:"default_output_tokens"`
	// MaxExactBytes is how many bytes of a request are counted with BPE;
	// the rest uses the heuristic (default 8 KiB).
	MaxExactBytes int `yaml:"max_exact_bytes"`
	// Tokenizers pick how each public model's tokens are counted; models not
	// listed use the heuristic at 4 bytes per token.
	Tokenizers []Tokenizer `yaml:"tokenizers"`
	// Store is where rate buckets live: memory (default) or redis.
	Store string `yaml:"store"`
	// Redis configures the redis store.
	Redis *Redis `yaml:"redis"`
	// Queue bounds how requests wait for a concurrency slot.
	Queue Queue `yaml:"queue"`
	// Tenants holds per-tenant limits; the name "*" applies to every tenant
	// not listed, each with its own buckets.
	Tenants []TenantLimits `yaml:"tenants"`
	// Backends caps in-flight streams per backend.
	Backends []BackendLimits `yaml:"backends"`
	// Budget holds what every spend budget shares (tenants[].budgets,
	// tenants[].api_keys): time zone, warning, usage series (budget.go).
	Budget BudgetSettings `yaml:"budget"`
	// ReadUsage is how a response that only needs reading has its usage
	// read: auto (default) has Envoy read it (as it passes, reported when
	// the stream ends) wherever Streamgate publishes the listener itself
	// (streamgate run), and the main filter read it elsewhere (a drop-in or
	// Istio Envoy may lack the reading filters); envoy has Envoy read it
	// anyway (a host Envoy with envoy/dropin/usage_filters.yaml and
	// usage_report_log.yaml); inline has the main filter read it, one
	// round trip per chunk. Envoy reads chat completions and messages only,
	// and only where it reaches ext_proc at an IP or a unix socket ("tap",
	// auto's former name, is accepted). docs/limits.md.
	ReadUsage string `yaml:"read_usage"`
}

// Ways of reading usage (Limits.ReadUsage).
const (
	ReadUsageAuto   = "auto"
	ReadUsageEnvoy  = "envoy"
	ReadUsageInline = "inline"
	// readUsageTap is ReadUsageAuto's former name, still accepted.
	readUsageTap = "tap"
)

// Tokenizer says how to count one public model's tokens.
type Tokenizer struct {
	// Model is the public model name.
	Model string `yaml:"model"`
	// Encoding is o200k_base, cl100k_base or heuristic.
	Encoding string `yaml:"encoding"`
	// CharsPerToken is the heuristic ratio (default 4).
	CharsPerToken float64 `yaml:"chars_per_token"`
}

// Rates are the limits of a tenant or a tenant×model pair. Zero means unlimited.
type Rates struct {
	// RequestsPerMinute caps requests admitted per minute.
	RequestsPerMinute int64 `yaml:"requests_per_minute"`
	// InputTokensPerMinute caps prompt tokens per minute (counted before admission).
	InputTokensPerMinute int64 `yaml:"input_tokens_per_minute"`
	// OutputTokensPerMinute caps output tokens per minute (reserved at admission, settled on usage).
	OutputTokensPerMinute int64 `yaml:"output_tokens_per_minute"`
	// TotalTokensPerMinute caps input plus output tokens per minute.
	TotalTokensPerMinute int64 `yaml:"total_tokens_per_minute"`
	// ConcurrentStreams caps streams open at once; excess requests wait in the queue.
	ConcurrentStreams int `yaml:"concurrent_streams"`
}

// TenantLimits are one tenant's limits, overall and per model.
type TenantLimits struct {
	// Name is the tenant, or "*" for every tenant not listed.
	Name  string `yaml:"name"`
	Rates `yaml:",inline"`
	// Models are the tenant's limits per public model, on top of its overall ones.
	Models []ModelLimits `yaml:"models"`
	// Services are the tenant's limits per service (service.go); service
	// requests count against these only.
	Services []ServiceLimits `yaml:"services"`
	// Budgets cap what the tenant spends per window, in the currency of
	// telemetry.prices (budget.go); "*" gives every other tenant its own.
	Budgets []Budget `yaml:"budgets"`
	// APIKeys are budgets of the tenant's API keys, on top of its own.
	APIKeys []KeyBudgets `yaml:"api_keys"`
}

// ModelLimits are a tenant's limits on one public model.
type ModelLimits struct {
	// Name is the public model name.
	Name  string `yaml:"name"`
	Rates `yaml:",inline"`
}

// BackendLimits caps one backend.
type BackendLimits struct {
	// Name is the backend.
	Name string `yaml:"name"`
	// MaxInFlight is how many streams the backend serves at once (0: unlimited).
	MaxInFlight int `yaml:"max_in_flight"`
}

// Queue bounds waiting for a concurrency slot.
type Queue struct {
	// Size is how many requests may wait at once (default 1024).
	Size int `yaml:"size"`
	// MaxWait is the longest a request waits (default 1s); it must stay
	// below extproc.message_timeout, which bounds the wait as Envoy sees it.
	MaxWait time.Duration `yaml:"max_wait"`
}

// Redis is the shared store for several gateway replicas.
type Redis struct {
	// Address is host:port of the Redis server.
	Address string `yaml:"address"`
	// PasswordEnv names the environment variable holding the Redis
	// password (AUTH); empty means no password.
	PasswordEnv string `yaml:"password_env"`
	// DB is the Redis database number (default 0; a cluster has only 0).
	DB int `yaml:"db"`
	// Cluster says address is a seed node of a Redis Cluster.
	Cluster bool `yaml:"cluster"`
	// FailOpen admits requests while Redis is unreachable; otherwise they get 503.
	FailOpen bool `yaml:"fail_open"`
	// Timeout bounds each Redis call (default 50ms).
	Timeout time.Duration `yaml:"timeout"`
	// KeyPrefix starts every key (default "streamgate"); no braces, which
	// Redis Cluster would hash instead of the tenant's.
	KeyPrefix string `yaml:"key_prefix"`
	// --- shared concurrency (issue 20 item 2; docs/limits.md) ---

	// Concurrency is where concurrent_streams and max_in_flight slots are
	// held: shared (default) holds them in Redis as leases, one cap across
	// every replica, with fair shares of a backend between tenants; local
	// keeps a cap per gateway process, as the memory store does.
	Concurrency string `yaml:"concurrency"`
	// LeaseTTL is how long a replica's slots outlive its last heartbeat
	// (default 10s; every TTL/5): a crashed replica's slots return within
	// it. At least 1s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// Where Redis.Concurrency holds slots.
const (
	ConcurrencyShared = "shared"
	ConcurrencyLocal  = "local"
	DefaultLeaseTTL   = 10 * time.Second
	minLeaseTTL       = time.Second
)

// CapsConcurrency reports whether l caps streams open at once anywhere:
// a tenant's or tenant×model's concurrent_streams, or a backend's
// max_in_flight.
func (l *Limits) CapsConcurrency() bool {
	for _, t := range l.Tenants {
		if t.ConcurrentStreams > 0 {
			return true
		}
		for _, m := range t.Models {
			if m.ConcurrentStreams > 0 {
				return true
			}
		}
	}
	for _, b := range l.Backends {
		if b.MaxInFlight > 0 {
			return true
		}
	}
	return false
}

// Any reports whether r limits anything.
func (r Rates) Any() bool {
	return r.RequestsPerMinute > 0 || r.InputTokensPerMinute > 0 || r.OutputTokensPerMinute > 0 ||
		r.TotalTokensPerMinute > 0 || r.ConcurrentStreams > 0
}

func (l *Limits) applyDefaults() {
	if l == nil {
		return
	}
	setString(&l.TenantHeader, DefaultLimitsTenantHeader)
	setString(&l.DefaultTenant, DefaultTenant)
	setString(&l.Store, LimitStoreMemory)
	setString(&l.ReadUsage, ReadUsageAuto)
	if l.ReadUsage == readUsageTap {
		l.ReadUsage = ReadUsageAuto
	}
	if l.DefaultOutputTokens == 0 {
		l.DefaultOutputTokens = DefaultOutputTokens
	}
	if l.MaxExactBytes == 0 {
		l.MaxExactBytes = DefaultMaxExactBytes
	}
	if l.Queue.Size == 0 {
		l.Queue.Size = DefaultQueueSize
	}
	if l.Queue.MaxWait == 0 {
		l.Queue.MaxWait = DefaultQueueMaxWait
	}
	if l.Redis != nil {
		if l.Redis.Timeout == 0 {
			l.Redis.Timeout = DefaultRedisTimeout
		}
		setString(&l.Redis.KeyPrefix, "streamgate")
		setString(&l.Redis.Concurrency, ConcurrencyShared)
		if l.Redis.LeaseTTL == 0 {
			l.Redis.LeaseTTL = DefaultLeaseTTL
		}
	}
	l.Budget.applyDefaults()
}

func (v *validator) validateLimits(c *Config, backends, models map[string]int) {
	l := c.Limits
	if l == nil {
		return
	}
	if l.DefaultOutputTokens < 0 {
		v.at("$.limits.default_output_tokens", "default_output_tokens must not be negative")
	}
	if l.MaxExactBytes < 0 {
		v.at("$.limits.max_exact_bytes", "max_exact_bytes must not be negative")
	}
	if l.Queue.Size < 0 {
		v.at("$.limits.queue.size", "queue size must not be negative")
	}
	if l.Queue.MaxWait < 0 || l.Queue.MaxWait+queueMessageTimeoutHeadroom > c.ExtProc.MessageTimeout {
		v.at("$.limits.queue.max_wait", "queue max_wait %s must be positive and at least %s below extproc.message_timeout (%s): Envoy fails a request whose ext_proc answer takes longer",
			l.Queue.MaxWait, queueMessageTimeoutHeadroom, c.ExtProc.MessageTimeout)
	}
	if l.ReadUsage != ReadUsageAuto && l.ReadUsage != ReadUsageEnvoy && l.ReadUsage != ReadUsageInline {
		v.at("$.limits.read_usage", "read_usage %q is not supported; use auto, envoy or inline", l.ReadUsage)
	}
	switch l.Store {
	case LimitStoreMemory:
	case LimitStoreRedis:
		if l.Redis == nil {
			v.at("$.limits.store", "store redis needs a redis section with an address")
		} else {
			v.validateRedis(l.Redis)
		}
	default:
		v.at("$.limits.store", "store %q is not supported; use memory or redis", l.Store)
	}
	for i, tk := range l.Tokenizers {
		p := fmt.Sprintf("$.limits.tokenizers[%d]", i)
		if _, ok := models[tk.Model]; !ok {
			v.at(p+".model", "tokenizer for model %q: no such model under models", tk.Model)
		}
		switch tk.Encoding {
		case "", "heuristic", "o200k_base", "cl100k_base":
		default:
			v.at(p+".encoding", "encoding %q is not supported; use o200k_base, cl100k_base or heuristic", tk.Encoding)
		}
		if tk.CharsPerToken < 0 {
			v.at(p+".chars_per_token", "chars_per_token must not be negative")
		}
	}
	tenants := map[string]bool{}
	for i, t := range l.Tenants {
		p := fmt.Sprintf("$.limits.tenants[%d]", i)
		if t.Name == "" {
			v.at(p, "tenant %d has no name (use \"*\" for every other tenant)", i+1)
		}
		if tenants[t.Name] {
			v.at(p+".name", "tenant %q is listed twice", t.Name)
		}
		tenants[t.Name] = true
		v.rates(p, t.Rates)
		v.validateServiceLimits(p, t)
		seen := map[string]bool{}
		for j, m := range t.Models {
			mp := fmt.Sprintf("%s.models[%d]", p, j)
			if _, ok := models[m.Name]; !ok {
				v.at(mp+".name", "tenant %q limits model %q, which is not defined under models", t.Name, m.Name)
			}
			if seen[m.Name] {
				v.at(mp+".name", "tenant %q lists model %q twice", t.Name, m.Name)
			}
			seen[m.Name] = true
			v.rates(mp, m.Rates)
		}
	}
	v.validateBudgets(c)
	for i, b := range l.Backends {
		p := fmt.Sprintf("$.limits.backends[%d]", i)
		if _, ok := backends[b.Name]; !ok {
			v.at(p+".name", "limits name backend %q, which is not defined under backends", b.Name)
		}
		if b.MaxInFlight < 0 {
			v.at(p+".max_in_flight", "max_in_flight must not be negative")
		}
	}
}

func (v *validator) validateRedis(r *Redis) {
	v.hostPort("$.limits.redis.address", r.Address)
	if r.DB < 0 {
		v.at("$.limits.redis.db", "db must not be negative")
	}
	if r.Cluster && r.DB != 0 {
		v.at("$.limits.redis.db", "a Redis Cluster has only db 0")
	}
	if r.Timeout < 0 {
		v.at("$.limits.redis.timeout", "timeout must be positive")
	}
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		v.at("$.limits.redis.key_prefix", "key_prefix %q must not contain { or }: the tenant in braces keeps a request's keys in one Redis Cluster slot", r.KeyPrefix)
	}
	if r.PasswordEnv != "" && strings.ContainsAny(r.PasswordEnv, "= \t") {
		v.at("$.limits.redis.password_env", "password_env must name an environment variable")
	}
	if r.Concurrency != ConcurrencyShared && r.Concurrency != ConcurrencyLocal {
		v.at("$.limits.redis.concurrency", "concurrency %q is not supported; use shared or local", r.Concurrency)
	}
	if r.LeaseTTL < minLeaseTTL {
		v.at("$.limits.redis.lease_ttl", "lease_ttl %s must be at least %s: the heartbeat renews leases every lease_ttl/5", r.LeaseTTL, minLeaseTTL)
	}
}

func (v *validator) rates(p string, r Rates) {
	for name, n := range map[string]int64{
		"requests_per_minute": r.RequestsPerMinute, "input_tokens_per_minute": r.InputTokensPerMinute,
		"output_tokens_per_minute": r.OutputTokensPerMinute, "total_tokens_per_minute": r.TotalTokensPerMinute,
		"concurrent_streams": int64(r.ConcurrentStreams),
	} {
		if n < 0 {
			v.at(p+"."+name, "%s must not be negative", name)
		}
	}
}

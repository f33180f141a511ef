package contract

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFailoverNames(t *testing.T) {
	for name, tc := range map[string]struct {
		backend   string
		fallbacks []string
		chain     []string
		cluster   string
	}{
		"no fallbacks":             {"a", nil, []string{"a"}, "a"},
		"fallbacks in order":       {"a", []string{"b", "c"}, []string{"a", "b", "c"}, "streamgate_failover_a+b+c"},
		"own backend listed again": {"b", []string{"a", "b"}, []string{"b", "a"}, "streamgate_failover_b+a"},
		"only itself as fallback":  {"a", []string{"a"}, []string{"a"}, "a"},
	} {
		t.Run(name, func(t *testing.T) {
			chain := FailoverChain(tc.backend, tc.fallbacks)
			assert.Equal(t, tc.chain, chain)
			assert.Equal(t, tc.cluster, FailoverCluster(chain))
		})
	}
}

func TestRateLimitHeaders(t *testing.T) {
	assert.Equal(t, []string{
		"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
		"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
	}, RateLimitHeaders)
}

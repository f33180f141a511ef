package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const bridgeBase = `gateway: {listen: "0.0.0.0:10001"}
backends: [{name: b, protocol: openai, endpoints: ["127.0.0.1:1"]}]
bridge:
  credentials:
    - {name: batch, env: SG_BRIDGE_KEY}
  sources:
    - name: q
      nats: {url: "nats://127.0.0.1:4222", stream: REQ}
      dead_letter: dead.q
      credential: batch
    - name: k
      kafka: {brokers: ["127.0.0.1:9092"], topic: requests}
      dead_letter: dead
`

func TestBridgeDefaults(t *testing.T) {
	cfg, err := Parse("b.yaml", []byte(bridgeBase))
	require.NoError(t, err)
	b := cfg.Bridge
	assert.Equal(t, "http://127.0.0.1:10001", b.GatewayURL, "an unspecified listen address is reached on loopback")
	assert.Equal(t, DefaultBridgeMaxInFlight, b.MaxInFlight)
	assert.Equal(t, DefaultBridgeMaxAttempts, b.MaxAttempts)
	assert.Equal(t, DefaultBridgeDedupeWindow, b.DedupeWindow)
	assert.Equal(t, time.Second, b.Backoff)
	assert.Equal(t, PrioritySheddable, b.Priority, "bulk traffic yields by default")
	assert.Equal(t, "streamgate-bridge", b.Sources[0].NATS.Consumer)
	assert.Equal(t, "streamgate-bridge", b.Sources[1].Kafka.Group)
	assert.False(t, b.Run)
}

func TestBridgeInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ from, to, want string }{
		"both brokers":         {"      dead_letter: dead\n", "      dead_letter: dead\n      nats: {url: \"nats://h:1\", stream: S}\n", `bridge source "k" needs exactly one of nats and kafka`},
		"unknown credential":   {"credential: batch", "credential: other", `credential "other" is not under bridge.credentials`},
		"bad nats url":         {"nats://127.0.0.1:4222", "http://127.0.0.1:4222", "must start with nats:// or tls://"},
		"wildcard dead letter": {"dead_letter: dead.q", "dead_letter: dead.>", "dead_letter subject or topic"},
		"bad broker":           {`["127.0.0.1:9092"]`, `["nohost"]`, `"nohost" is not a valid address`},
		"bad priority":         {"bridge:\n", "bridge:\n  priority: urgent\n", `bridge priority "urgent"`},
		"bad gateway url":      {"bridge:\n", "bridge:\n  gateway_url: ftp://x\n", "gateway_url"},
		"env and file":         {"env: SG_BRIDGE_KEY}", "env: SG_BRIDGE_KEY, file: /k}", "exactly one of env and file"},
		"duplicate source":     {"    - name: k\n", "    - name: q\n", `bridge source name "q" is used twice`},
	} {
		t.Run(name, func(t *testing.T) {
			text := replaceOnce(t, bridgeBase, tc.from, tc.to)
			_, err := Parse("b.yaml", []byte(text))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestBridgeWithoutSources(t *testing.T) {
	_, err := Parse("b.yaml", []byte("backends: [{name: b, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\nbridge: {max_in_flight: 0}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the bridge has no sources")
}

func replaceOnce(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	require.GreaterOrEqual(t, i, 0, "%q not in the base", from)
	return s[:i] + to + s[i+len(from):]
}

func TestBridgeCredentialKey(t *testing.T) {
	t.Setenv("SG_BRIDGE_KEY", "sk-1")
	k, err := BridgeCredentialKey(BridgeCredential{Name: "a", Env: "SG_BRIDGE_KEY"})
	require.NoError(t, err)
	assert.Equal(t, "sk-1", k)
	_, err = BridgeCredentialKey(BridgeCredential{Name: "a", Env: "SG_BRIDGE_UNSET_KEY"})
	assert.ErrorContains(t, err, "empty or unset")
	f := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(f, []byte(" sk-2\n"), 0o600))
	k, err = BridgeCredentialKey(BridgeCredential{Name: "a", File: f})
	require.NoError(t, err)
	assert.Equal(t, "sk-2", k)
	_, err = BridgeCredentialKey(BridgeCredential{Name: "a", File: f + "x"})
	assert.ErrorContains(t, err, "cannot read")
	assert.NotContains(t, err.Error(), "sk-2")
}

func TestBridgeCheckSources(t *testing.T) {
	f := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(f, []byte(bridgeBase), 0o600))
	cfg, err := Load(f)
	require.NoError(t, err)
	t.Setenv("SG_BRIDGE_KEY", "")
	err = cfg.CheckSources()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `bridge credential "batch": environment variable SG_BRIDGE_KEY is empty or unset`)
	t.Setenv("SG_BRIDGE_KEY", "sk-x")
	require.NoError(t, cfg.CheckSources())
	checks := strings.Join(cfg.StartOnlyChecks(), "\n")
	assert.Contains(t, checks, "bridge.sources q: nats://127.0.0.1:4222 is reachable and has the JetStream stream REQ")
	assert.Contains(t, checks, "bridge.sources k: Kafka 127.0.0.1:9092 is reachable")
}

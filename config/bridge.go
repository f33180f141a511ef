package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of the bridge section.
const (
	DefaultBridgeMaxInFlight    = 64
	DefaultBridgeMaxAttempts    = 5
	DefaultBridgeBackoff        = time.Second
	DefaultBridgeMaxBackoff     = 30 * time.Second
	DefaultBridgeDedupeWindow   = time.Hour
	DefaultBridgeDedupeEntries  = 100000
	DefaultBridgeRequestTimeout = 10 * time.Minute
	maxBridgeInFlight           = 10000
)

// Bridge is the event-stream bridge (`streamgate bridge`, docs/streams.md):
// it consumes inference requests from NATS JetStream and Kafka, sends each
// through the gateway's own listener and publishes the results. Nil (no
// bridge section) means no bridge.
type Bridge struct {
	// Run starts the bridge inside `streamgate run` too (default false:
	// only `streamgate bridge` runs it).
	Run bool `yaml:"run"`
	// GatewayURL is where the bridge sends requests: the gateway's own
	// listener (default http://gateway.listen, 0.0.0.0 and :: read as
	// loopback).
	GatewayURL string `yaml:"gateway_url"`
	// MaxInFlight caps the requests the bridge has open toward the gateway
	// across its sources (default 64); within it the bridge's admission
	// window grows by one per window of successes and halves on 429 or 503.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxAttempts is how many times a request refused as overloaded (429,
	// 503), failed with 5xx or unanswered is tried before it goes to the
	// dead-letter destination (default 5).
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the delay before the second attempt, doubling up to
	// max_backoff (default 1s); a longer Retry-After wins.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps the retry delay (default 30s).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Priority is sent as x-streamgate-priority when an envelope names
	// none (default sheddable): bulk traffic yields to interactive traffic
	// under picking saturation. The gateway honours it only for tenants
	// with priority_header (gateway.priority_header on an open gateway).
	Priority string `yaml:"priority"`
	// DedupeWindow is how long a request id whose result was published is
	// remembered: a redelivery within it is acknowledged without running
	// again (default 1h).
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// DedupeEntries bounds the ids each source remembers in memory
	// (default 100000); the oldest are forgotten first.
	DedupeEntries int `yaml:"dedupe_entries"`
	// RequestTimeout bounds one attempt of a request whose envelope has no
	// deadline (default 10m).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Credentials are the API keys envelopes refer to by name; a message
	// never carries a key.
	Credentials []BridgeCredential `yaml:"credentials"`
	// Sources are the request streams consumed.
	Sources []BridgeSource `yaml:"sources"`
}

// BridgeCredential is one API key the bridge sends requests with, read at
// start from an environment variable or a file.
type BridgeCredential struct {
	// Name is what an envelope's credential field names.
	Name string `yaml:"name"`
	// Env is the environment variable holding the key.
	Env string `yaml:"env"`
	// File holds the key (surrounding whitespace is trimmed).
	File string `yaml:"file"`
}

// BridgeSource is one request stream: exactly one of nats and kafka.
type BridgeSource struct {
	// Name labels the source's metrics and logs.
	Name string `yaml:"name"`
	// NATS consumes a JetStream stream with a durable pull consumer.
	NATS *BridgeNATS `yaml:"nats"`
	// Kafka consumes a topic in a consumer group.
	Kafka *BridgeKafka `yaml:"kafka"`
	// DeadLetter is the subject (NATS) or topic (Kafka) refused and
	// exhausted requests go to, with the reason.
	DeadLetter string `yaml:"dead_letter"`
	// Credential is the credentials entry used for envelopes naming none
	// (default: such envelopes are dead-lettered).
	Credential string `yaml:"credential"`
}

// BridgeNATS is a JetStream request stream.
type BridgeNATS struct {
	// URL is the NATS server, nats:// or tls://.
	URL string `yaml:"url"`
	// Stream is the JetStream stream holding the requests; it must exist.
	Stream string `yaml:"stream"`
	// Consumer is the durable pull consumer's name, created when missing
	// (default streamgate-bridge).
	Consumer string `yaml:"consumer"`
	// Subject filters the stream's subjects (default: all of them).
	Subject string `yaml:"subject"`
}

// BridgeKafka is a Kafka request topic.
type BridgeKafka struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// Topic holds the requests.
	Topic string `yaml:"topic"`
	// Group is the consumer group (default streamgate-bridge).
	Group string `yaml:"group"`
}

func (b *Bridge) applyDefaults(gatewayListen string) {
	if b == nil {
		return
	}
	b.GatewayURL = gatewayURL(b.GatewayURL, gatewayListen)
	setInt(&b.MaxInFlight, DefaultBridgeMaxInFlight)
	setInt(&b.MaxAttempts, DefaultBridgeMaxAttempts)
	setInt(&b.DedupeEntries, DefaultBridgeDedupeEntries)
	setDuration(&b.Backoff, DefaultBridgeBackoff)
	setDuration(&b.MaxBackoff, DefaultBridgeMaxBackoff)
	setDuration(&b.DedupeWindow, DefaultBridgeDedupeWindow)
	setDuration(&b.RequestTimeout, DefaultBridgeRequestTimeout)
	setString(&b.Priority, PrioritySheddable)
	for i := range b.Sources {
		if n := b.Sources[i].NATS; n != nil {
			setString(&n.Consumer, "streamgate-bridge")
		}
		if k := b.Sources[i].Kafka; k != nil {
			setString(&k.Group, "streamgate-bridge")
		}
	}
}

func setInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

func (v *validator) validateBridge(b *Bridge) {
	if b == nil {
		return
	}
	if u, err := url.Parse(b.GatewayURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.at("$.bridge.gateway_url", "bridge gateway_url %q must be an http:// or https:// URL", b.GatewayURL)
	}
	if b.MaxInFlight < 1 || b.MaxInFlight > maxBridgeInFlight {
		v.at("$.bridge.max_in_flight", "bridge max_in_flight must be 1-%d", maxBridgeInFlight)
	}
	if b.MaxAttempts < 1 || b.MaxAttempts > 100 {
		v.at("$.bridge.max_attempts", "bridge max_attempts must be 1-100")
	}
	if b.DedupeEntries < 1 {
		v.at("$.bridge.dedupe_entries", "bridge dedupe_entries must be positive")
	}
	for _, d := range []struct {
		path string
		d    time.Duration
	}{{"backoff", b.Backoff}, {"max_backoff", b.MaxBackoff}, {"dedupe_window", b.DedupeWindow}, {"request_timeout", b.RequestTimeout}} {
		if d.d < 0 {
			v.at("$.bridge."+d.path, "bridge %s must be positive", d.path)
		}
	}
	if !ValidPriority(b.Priority) {
		v.at("$.bridge.priority", "bridge priority %q must be %s, %s or %s", b.Priority, PriorityCritical, PriorityStandard, PrioritySheddable)
	}
	creds := map[string]bool{}
	for i, c := range b.Credentials {
		p := fmt.Sprintf("$.bridge.credentials[%d]", i)
		if c.Name == "" || !validName(c.Name) {
			v.at(p+".name", "bridge credential %d needs a name of letters, digits, '-', '_' and '.'", i+1)
		}
		if creds[c.Name] {
			v.at(p+".name", "bridge credential name %q is used twice", c.Name)
		}
		creds[c.Name] = true
		if (c.Env == "") == (c.File == "") {
			v.at(p, "bridge credential %q needs exactly one of env and file", c.Name)
		}
	}
	if len(b.Sources) == 0 {
		v.at("$.bridge.sources", "the bridge has no sources; add a nats or kafka source under bridge.sources")
	}
	names := map[string]bool{}
	for i := range b.Sources {
		v.validateBridgeSource(fmt.Sprintf("$.bridge.sources[%d]", i), &b.Sources[i], creds, names)
	}
}

func (v *validator) validateBridgeSource(p string, s *BridgeSource, creds, names map[string]bool) {
	if s.Name == "" || !validName(s.Name) {
		v.at(p+".name", "bridge source needs a name of letters, digits, '-', '_' and '.'")
	}
	if names[s.Name] {
		v.at(p+".name", "bridge source name %q is used twice", s.Name)
	}
	names[s.Name] = true
	if (s.NATS == nil) == (s.Kafka == nil) {
		v.at(p, "bridge source %q needs exactly one of nats and kafka", s.Name)
	}
	if s.DeadLetter == "" || strings.ContainsAny(s.DeadLetter, " \t*>") {
		v.at(p+".dead_letter", "bridge source %q needs a dead_letter subject or topic (no spaces or wildcards)", s.Name)
	}
	if s.Credential != "" && !creds[s.Credential] {
		v.at(p+".credential", "bridge source %q: credential %q is not under bridge.credentials", s.Name, s.Credential)
	}
	if n := s.NATS; n != nil {
		if !strings.HasPrefix(n.URL, "nats://") && !strings.HasPrefix(n.URL, "tls://") {
			v.at(p+".nats.url", "nats url %q must start with nats:// or tls://", n.URL)
		}
		if n.Stream == "" || strings.ContainsAny(n.Stream, " \t*>.") {
			v.at(p+".nats.stream", "bridge source %q needs a JetStream stream name (no spaces, dots or wildcards)", s.Name)
		}
		if strings.ContainsAny(n.Consumer, " \t*>.") {
			v.at(p+".nats.consumer", "bridge source %q: consumer %q may not hold spaces, dots or wildcards", s.Name, n.Consumer)
		}
	}
	if k := s.Kafka; k != nil {
		if len(k.Brokers) == 0 {
			v.at(p+".kafka.brokers", "bridge source %q needs at least one Kafka broker", s.Name)
		}
		for j, br := range k.Brokers {
			v.hostPort(fmt.Sprintf("%s.kafka.brokers[%d]", p, j), br)
		}
		if k.Topic == "" {
			v.at(p+".kafka.topic", "bridge source %q needs a Kafka topic", s.Name)
		}
	}
}

// BridgeCredentialKey reads credential c's key from its environment
// variable or file. The key is never logged nor put in an error.
func BridgeCredentialKey(c BridgeCredential) (string, error) {
	if c.Env != "" {
		k := os.Getenv(c.Env)
		if k == "" {
			return "", fmt.Errorf("bridge credential %q: environment variable %s is empty or unset", c.Name, c.Env)
		}
		return k, nil
	}
	data, err := os.ReadFile(c.File)
	if err != nil {
		return "", fmt.Errorf("bridge credential %q: cannot read file %q: %w", c.Name, c.File, unwrapPath(err))
	}
	k := strings.TrimSpace(string(data))
	if k == "" {
		return "", fmt.Errorf("bridge credential %q: file %q is empty", c.Name, c.File)
	}
	return k, nil
}

// gatewayURL is the URL the bridge and the batch runner send requests to:
// the configured one, else the gateway's own listener (on loopback when it
// listens on every address).
func gatewayURL(configured, gatewayListen string) string {
	if configured == "" {
		host, port, err := net.SplitHostPort(gatewayListen)
		if err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				host = "127.0.0.1"
			}
			configured = "http://" + net.JoinHostPort(host, port)
		}
	}
	return strings.TrimRight(configured, "/")
}

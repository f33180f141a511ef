package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Defaults of the batch section.
const (
	DefaultBatchListen      = "127.0.0.1:9466"
	DefaultBatchMaxInFlight = 16
	// BatchBackend, BatchService and BatchFilesService are the backend
	// and services a batch section mounts: /v1/batches and /v1/files on
	// the gateway go to the batch service, through ext_proc like any
	// service request. Tenants are granted them under auth.tenants[].services.
	BatchBackend      = "streamgate-batch"
	BatchService      = "batch"
	BatchFilesService = "batch-files"
)

// Batch is the OpenAI Batch API (docs/batch.md): `streamgate run` serves
// /v1/files and /v1/batches, stores files and results under Dir and runs
// each line of a batch through the gateway's own listener. Nil (no batch
// section) means no Batch API.
type Batch struct {
	// Listen is the batch service's own address, which Envoy routes
	// /v1/files and /v1/batches to (default 127.0.0.1:9466); keep it off
	// the network: it trusts the tenant header ext_proc sets.
	Listen string `yaml:"listen"`
	// Dir holds files, batches and per-line results (required); a batch
	// in progress resumes from it after a restart.
	Dir string `yaml:"dir"`
	// GatewayURL is where batch lines are sent: the gateway's own listener
	// (default http://gateway.listen, 0.0.0.0 and :: read as loopback).
	GatewayURL string `yaml:"gateway_url"`
	// MaxInFlight caps the lines in flight across all batches (default
	// 16); within it the bridge's admission window grows by one per window
	// of successes and halves on 429 or 503.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxAttempts is how many times a line refused as overloaded (429,
	// 503), failed with 5xx or unanswered is tried before it goes to the
	// error file (default 5).
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the delay before a line's second attempt, doubling
	// (default 1s); a longer Retry-After wins.
	Backoff time.Duration `yaml:"backoff"`
	// Priority is sent as x-streamgate-priority with every line (default
	// sheddable), for tenants with priority_header.
	Priority string `yaml:"priority"`
	// RequestTimeout bounds one attempt of a line (default 10m).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Credentials are the API keys batch lines are sent with, one per
	// tenant allowed to create batches: name is the tenant's name (with
	// auth off, lines go without a key and none is needed).
	Credentials []BridgeCredential `yaml:"credentials"`
}

// mount adds the batch service's backend and services to c.
func (b *Batch) mount(c *Config) {
	if b == nil {
		return
	}
	setString(&b.Listen, DefaultBatchListen)
	c.Backends = append(c.Backends, Backend{Name: BatchBackend, Protocol: ProtocolHTTP, Endpoints: []Endpoint{{Address: b.Listen}}})
	for _, s := range []Service{{Name: BatchService, PathPrefix: "/v1/batches"}, {Name: BatchFilesService, PathPrefix: "/v1/files"}} {
		s.Backend, s.builtin = BatchBackend, true
		c.Services = append(c.Services, s)
	}
}

func (b *Batch) applyDefaults(gatewayListen string) {
	if b == nil {
		return
	}
	b.GatewayURL = gatewayURL(b.GatewayURL, gatewayListen)
	setInt(&b.MaxInFlight, DefaultBatchMaxInFlight)
	setInt(&b.MaxAttempts, DefaultBridgeMaxAttempts)
	setDuration(&b.Backoff, DefaultBridgeBackoff)
	setDuration(&b.RequestTimeout, DefaultBridgeRequestTimeout)
	setString(&b.Priority, PrioritySheddable)
}

func (v *validator) validateBatch(b *Batch) {
	if b == nil {
		return
	}
	if b.Dir == "" {
		v.at("$.batch.dir", "batch needs a dir to keep files and results in")
	}
	if _, _, err := net.SplitHostPort(b.Listen); err != nil {
		v.at("$.batch.listen", "batch listen %q must be host:port", b.Listen)
	}
	if !strings.HasPrefix(b.GatewayURL, "http://") && !strings.HasPrefix(b.GatewayURL, "https://") {
		v.at("$.batch.gateway_url", "batch gateway_url %q must be an http:// or https:// URL", b.GatewayURL)
	}
	if b.MaxInFlight < 1 || b.MaxInFlight > maxBridgeInFlight {
		v.at("$.batch.max_in_flight", "batch max_in_flight must be 1-%d", maxBridgeInFlight)
	}
	if b.MaxAttempts < 1 {
		v.at("$.batch.max_attempts", "batch max_attempts must be at least 1")
	}
	seen := map[string]bool{}
	for i, c := range b.Credentials {
		p := fmt.Sprintf("$.batch.credentials[%d]", i)
		if c.Name == "" || seen[c.Name] {
			v.at(p+".name", "batch credential %d needs a unique name (the tenant's)", i+1)
		}
		seen[c.Name] = true
		if (c.Env == "") == (c.File == "") {
			v.at(p, "batch credential %q needs exactly one of env and file", c.Name)
		}
	}
}

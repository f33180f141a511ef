package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamgate/streamgate/config"
)

// publishTimeout bounds one JetStream publish (waiting for its ack).
const publishTimeout = 2 * time.Second

// Event is one finished request as published to usage consumers: the same
// facts as its access log line, keyed by the same request id.
type Event struct {
	RequestID     string    `json:"request_id"`
	Time          time.Time `json:"time"`
	Tenant        string    `json:"tenant,omitempty"`
	Endpoint      string    `json:"endpoint"`
	Model         string    `json:"model,omitempty"`
	UpstreamModel string    `json:"upstream_model,omitempty"`
	ResponseModel string    `json:"response_model,omitempty"`
	Backend       string    `json:"backend,omitempty"`
	Version       string    `json:"version,omitempty"`
	Status        int       `json:"status,omitempty"`
	Error         string    `json:"error,omitempty"`
	UsageKnown    bool      `json:"usage_known"`
	InputTokens   int64     `json:"input_tokens"`
	OutputTokens  int64     `json:"output_tokens"`
	CostUSD       float64   `json:"cost_usd"`
	Images        int64     `json:"images,omitempty"`
	TTFTMs        float64   `json:"ttft_ms,omitempty"`
	DurationMs    float64   `json:"duration_ms"`
	// Service and Operation name a service request's service and
	// operation (docs/services.md), RequestBytes and ResponseBytes its
	// body bytes; all empty for model requests.
	Service       string `json:"service,omitempty"`
	Operation     string `json:"operation,omitempty"`
	RequestBytes  uint64 `json:"request_bytes,omitempty"`
	ResponseBytes uint64 `json:"response_bytes,omitempty"`
	// Budgets are the request's spend budget windows (docs/limits.md).
	Budgets []BudgetWindow `json:"budgets,omitempty"`
}

// EventOf builds the usage event for r.
func EventOf(r *Record) Event {
	ev := Event{
		RequestID: r.RequestID, Time: r.Start.UTC(), Tenant: r.Tenant, Endpoint: r.Endpoint,
		Model: r.Model, UpstreamModel: r.UpstreamModel, ResponseModel: r.ResponseModel,
		Backend: r.Backend, Version: r.Version, Status: r.Status, Error: r.ErrorType(),
		UsageKnown: r.UsageKnown, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens, CostUSD: r.CostUSD,
		Images:     r.Images,
		DurationMs: ms(r.Duration()),
		Budgets:    r.Budgets,
	}
	if d, ok := r.TTFT(); ok {
		ev.TTFTMs = ms(d)
	}
	return ev
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Sink publishes usage events to NATS from one goroutine. Publish never
// blocks: a full buffer drops the event and counts it; a server that is
// down counts and logs failures, and the connection keeps reconnecting.
// Safe for concurrent use; Close once.
type Sink struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
	ch      chan Event
	metrics *Metrics
	log     *slog.Logger
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	// failLogged limits "sink down" logs to one per outage.
	failLogged bool
}

// NewSink connects to cfg.URL (retrying in the background when the server
// is not up yet) and starts publishing.
func NewSink(cfg *config.NATS, m *Metrics, log *slog.Logger) (*Sink, error) {
	nc, err := nats.Connect(cfg.URL,
		nats.Name("streamgate"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), // fail publishes while disconnected instead of buffering unboundedly
	)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to nats %s: %w", cfg.URL, err)
	}
	s := &Sink{nc: nc, subject: cfg.Subject, ch: make(chan Event, max(cfg.Buffer, 1)), metrics: m, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.JetStream {
		if s.js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return nil, fmt.Errorf("cannot open jetstream: %w", err)
		}
	}
	go s.run()
	return s, nil
}

// Publish queues ev without waiting. A nil Sink drops it silently.
func (s *Sink) Publish(ev Event) {
	if s == nil {
		return
	}
	select {
	case s.ch <- ev:
	default:
		s.metrics.event("dropped")
	}
}

// Close sends what is queued (bounded by ctx) and disconnects. Events
// published afterwards are not sent.
func (s *Sink) Close(ctx context.Context) {
	if s == nil {
		return
	}
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	_ = s.nc.Drain()
}

func (s *Sink) run() {
	defer close(s.done)
	for {
		select {
		case ev := <-s.ch:
			s.deliver(ev)
		case <-s.stop:
			for {
				select {
				case ev := <-s.ch:
					s.deliver(ev)
				default:
					return
				}
			}
		}
	}
}

func (s *Sink) deliver(ev Event) {
	if err := s.send(ev); err != nil {
		s.metrics.event("failed")
		if !s.failLogged {
			s.log.Warn("cannot publish usage event; counting failures until it recovers", "subject", s.subject, "error", err.Error())
			s.failLogged = true
		}
		return
	}
	s.metrics.event("published")
	if s.failLogged {
		s.log.Info("publishing usage events again", "subject", s.subject)
		s.failLogged = false
	}
}

func (s *Sink) send(ev Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("cannot encode usage event: %w", err)
	}
	if s.js != nil {
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		defer cancel()
		if _, err := s.js.Publish(ctx, s.subject, data); err != nil {
			return fmt.Errorf("cannot publish usage event: %w", err)
		}
		return nil
	}
	if !s.nc.IsConnected() {
		return fmt.Errorf("cannot publish usage event: %w", nats.ErrConnectionClosed)
	}
	if err := s.nc.Publish(s.subject, data); err != nil {
		return fmt.Errorf("cannot publish usage event: %w", err)
	}
	return nil
}

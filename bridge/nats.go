package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamgate/streamgate/config"
)

// ackWait is the JetStream consumer's ack wait: a message neither acked
// nor reported in progress (Message.Working) for this long is redelivered.
const ackWait = 30 * time.Second

// RequestIDHeader carries the request id on every message the bridge
// publishes.
const RequestIDHeader = "Streamgate-Request-Id"

// natsSource consumes a JetStream stream with a durable pull consumer and
// publishes with JetStream (acknowledged, deduplicated by Nats-Msg-Id)
// where a stream captures the destination, plain NATS otherwise.
type natsSource struct {
	name    string
	nc      *nats.Conn
	js      jetstream.JetStream
	cons    jetstream.Consumer
	journal *natsJournal
	// viaJS caches, per destination subject, whether a stream captures it.
	viaJS sync.Map
}

var _ Source = (*natsSource)(nil)

func dialNATS(ctx context.Context, sc config.BridgeSource, cfg *config.Bridge) (*natsSource, error) {
	n := sc.NATS
	nc, err := nats.Connect(n.URL, nats.Name("streamgate-bridge "+sc.Name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cannot use JetStream: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, n.Stream, jetstream.ConsumerConfig{
		Durable:       n.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // the bridge counts attempts and dead-letters
		MaxAckPending: max(1000, 4*cfg.MaxInFlight),
		FilterSubject: n.Subject,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cannot create the consumer %q on stream %q: %w", n.Consumer, n.Stream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      "streamgate_bridge_" + n.Stream + "_" + n.Consumer,
		Description: "request ids whose results the Streamgate bridge published",
		TTL:         cfg.DedupeWindow,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cannot create the dedupe bucket: %w", err)
	}
	return &natsSource{name: sc.Name, nc: nc, js: js, cons: cons, journal: &natsJournal{kv: kv}}, nil
}

func (s *natsSource) Name() string     { return s.name }
func (s *natsSource) Journal() Journal { return s.journal }
func (s *natsSource) Close() error     { s.nc.Close(); return nil }

func (s *natsSource) Fetch(ctx context.Context, n int) ([]Message, error) {
	// What is waiting, at once; else the first message to arrive within a
	// second (a Fetch of n would wait for all n or the whole second).
	out, err := s.fetch(s.cons.FetchNoWait(n))
	if len(out) == 0 && err == nil {
		out, err = s.fetch(s.cons.Fetch(1, jetstream.FetchMaxWait(time.Second)))
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, nats.ErrConnectionClosed) {
			return nil, ctx.Err()
		}
		// A disconnected client reconnects by itself: wait, try again.
		sleep(ctx, time.Second)
		return out, nil
	}
	return out, nil
}

func (s *natsSource) fetch(batch jetstream.MessageBatch, err error) ([]Message, error) {
	if err != nil {
		return nil, err
	}
	var out []Message
	for m := range batch.Messages() {
		out = append(out, &natsMessage{m: m})
	}
	return out, nil
}

func (s *natsSource) Publish(ctx context.Context, dest string, msgs []Outgoing) error {
	if !s.capturedByStream(ctx, dest) {
		for _, o := range msgs {
			if err := s.nc.PublishMsg(natsMsg(dest, o)); err != nil {
				return fmt.Errorf("cannot publish to %s: %w", dest, err)
			}
		}
		if err := s.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("cannot publish to %s: %w", dest, err)
		}
		return nil
	}
	if len(msgs) == 1 {
		if _, err := s.js.PublishMsg(ctx, natsMsg(dest, msgs[0])); err != nil {
			return fmt.Errorf("cannot publish to %s: %w", dest, err)
		}
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, o := range msgs {
		f, err := s.js.PublishMsgAsync(natsMsg(dest, o))
		if err != nil {
			return fmt.Errorf("cannot publish to %s: %w", dest, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("cannot publish to %s: %w", dest, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// capturedByStream reports whether a JetStream stream captures subject,
// asking the server once per subject.
func (s *natsSource) capturedByStream(ctx context.Context, subject string) bool {
	if v, ok := s.viaJS.Load(subject); ok {
		return v.(bool)
	}
	_, err := s.js.StreamNameBySubject(ctx, subject)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return true // unknown now: JetStream's acknowledged publish fails loudly
	}
	s.viaJS.Store(subject, err == nil)
	return err == nil
}

func natsMsg(subject string, o Outgoing) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = o.Data
	if o.Key != "" {
		m.Header.Set(jetstream.MsgIDHeader, o.Key)
	}
	if o.ID != "" {
		m.Header.Set(RequestIDHeader, o.ID)
	}
	return m
}

func (s *natsSource) Lag(ctx context.Context) (int64, error) {
	info, err := s.cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.NumPending), nil
}

// natsMessage is one JetStream delivery.
type natsMessage struct{ m jetstream.Msg }

func (m *natsMessage) Data() []byte { return m.m.Data() }

func (m *natsMessage) Delivery() int {
	md, err := m.m.Metadata()
	if err != nil {
		return 1
	}
	return int(md.NumDelivered)
}

func (m *natsMessage) Enqueued() time.Time {
	md, err := m.m.Metadata()
	if err != nil {
		return time.Now()
	}
	return md.Timestamp
}

func (m *natsMessage) Ack(ctx context.Context) error { return m.m.DoubleAck(ctx) }

func (m *natsMessage) Nak(_ context.Context, delay time.Duration) error {
	return m.m.NakWithDelay(delay)
}

func (m *natsMessage) Working(context.Context) { _ = m.m.InProgress() }

// natsJournal keeps published request ids in a JetStream key-value bucket
// whose TTL is the dedupe window; keys are hashes of the ids (ids may hold
// characters keys cannot).
type natsJournal struct{ kv jetstream.KeyValue }

func journalKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

func (j *natsJournal) Seen(ctx context.Context, id string) (bool, error) {
	_, err := j.kv.Get(ctx, journalKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (j *natsJournal) Record(ctx context.Context, id string) error {
	_, err := j.kv.Put(ctx, journalKey(id), []byte{'1'})
	return err
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

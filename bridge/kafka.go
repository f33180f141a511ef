package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamgate/streamgate/config"
)

// commitEvery is how often the Kafka source commits the offsets below
// which every message was acknowledged.
const commitEvery = 500 * time.Millisecond

// kafkaSource consumes a topic in a consumer group with franz-go and
// commits, per partition, the offset below which every message was
// acknowledged, so messages finishing out of order are never skipped. Kafka
// has no per-message nak: a nak holds the message in this process and
// hands it out again after the delay, its offset uncommitted meanwhile.
type kafkaSource struct {
	name    string
	topic   string
	cl      *kgo.Client
	journal *kafkaJournal
	log     *slog.Logger

	mu    sync.Mutex
	parts map[int32]*partition
	ready []*kafkaMessage // naked messages whose delay passed
	stop  chan struct{}
	done  chan struct{}
}

var _ Source = (*kafkaSource)(nil)

// partition tracks one assigned partition's offsets.
type partition struct {
	next      int64              // one past the highest offset fetched
	pending   map[int64]struct{} // fetched, not yet acknowledged
	committed int64              // last offset committed (-1: none)
	hwm       int64              // high watermark from the last fetch
}

func dialKafka(ctx context.Context, sc config.BridgeSource, cfg *config.Bridge, log *slog.Logger) (*kafkaSource, error) {
	k := sc.Kafka
	s := &kafkaSource{name: sc.Name, topic: k.Topic, log: log, parts: map[int32]*partition{}, stop: make(chan struct{}), done: make(chan struct{})}
	journal, err := openKafkaJournal(ctx, k, cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.Brokers...),
		kgo.ClientID("streamgate-bridge"),
		kgo.ConsumerGroup(k.Group),
		kgo.ConsumeTopics(k.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(time.Second),
		kgo.ProducerLinger(0),
		kgo.AllowAutoTopicCreation(),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.revoked),
	)
	if err != nil {
		journal.close()
		return nil, fmt.Errorf("cannot create the Kafka client: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		journal.close()
		return nil, fmt.Errorf("cannot reach Kafka: %w", err)
	}
	s.cl, s.journal = cl, journal
	go s.commitLoop()
	return s, nil
}

func (s *kafkaSource) Name() string     { return s.name }
func (s *kafkaSource) Journal() Journal { return s.journal }

// Close commits what was acknowledged and leaves the group.
func (s *kafkaSource) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.commit(ctx)
	s.cl.Close()
	s.journal.close()
	return nil
}

func (s *kafkaSource) Fetch(ctx context.Context, n int) ([]Message, error) {
	s.mu.Lock()
	if len(s.ready) > 0 {
		k := min(n, len(s.ready))
		out := make([]Message, k)
		for i := range k {
			out[i] = s.ready[i]
		}
		s.ready = s.ready[k:]
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	fs := s.cl.PollRecords(pctx, n)
	if fs.IsClientClosed() {
		return nil, ctx.Err()
	}
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			s.log.Warn("bridge: Kafka fetch error", "source", s.name, "topic", topic, "partition", p, "error", err.Error())
		}
	})
	var out []Message
	s.mu.Lock()
	defer s.mu.Unlock()
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if fp.Topic != s.topic {
			return
		}
		p := s.part(fp.Partition)
		p.hwm = fp.HighWatermark
		for _, r := range fp.Records {
			p.pending[r.Offset] = struct{}{}
			p.next = max(p.next, r.Offset+1)
			out = append(out, &kafkaMessage{src: s, rec: r, delivery: 1})
		}
	})
	return out, nil
}

// part returns partition p's tracker, creating it; s.mu is held.
func (s *kafkaSource) part(p int32) *partition {
	t, ok := s.parts[p]
	if !ok {
		t = &partition{pending: map[int64]struct{}{}, committed: -1}
		s.parts[p] = t
	}
	return t
}

// committable returns, per partition, the offset to commit: the lowest
// one still pending, or one past the highest fetched; s.mu is held.
func (s *kafkaSource) committable(only map[int32]bool) map[int32]int64 {
	out := map[int32]int64{}
	for id, p := range s.parts {
		if only != nil && !only[id] {
			continue
		}
		off := p.next
		for o := range p.pending {
			off = min(off, o)
		}
		if off > p.committed && p.next > 0 {
			out[id] = off
		}
	}
	return out
}

func (s *kafkaSource) commitOffsets(ctx context.Context, offs map[int32]int64) {
	if len(offs) == 0 {
		return
	}
	m := map[int32]kgo.EpochOffset{}
	for p, o := range offs {
		m[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	var failed error
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.topic: m}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			failed = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					failed = e
				}
			}
		}
	})
	if failed != nil {
		s.log.Warn("bridge: cannot commit Kafka offsets; messages after them may be redelivered and deduplicated", "source", s.name, "error", failed.Error())
		return
	}
	s.mu.Lock()
	for p, o := range offs {
		if t, ok := s.parts[p]; ok {
			t.committed = max(t.committed, o)
		}
	}
	s.mu.Unlock()
}

func (s *kafkaSource) commit(ctx context.Context) {
	s.mu.Lock()
	offs := s.committable(nil)
	s.mu.Unlock()
	s.commitOffsets(ctx, offs)
}

func (s *kafkaSource) commitLoop() {
	defer close(s.done)
	t := time.NewTicker(commitEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.commit(ctx)
			cancel()
		}
	}
}

// revoked commits what the revoked partitions acknowledged and forgets
// them: their messages still in flight are finished, but their acks no
// longer count (the next owner redelivers them; the journal deduplicates).
func (s *kafkaSource) revoked(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	only := map[int32]bool{}
	for _, p := range lost[s.topic] {
		only[p] = true
	}
	s.mu.Lock()
	offs := s.committable(only)
	s.mu.Unlock()
	s.commitOffsets(ctx, offs)
	s.mu.Lock()
	for p := range only {
		delete(s.parts, p)
	}
	kept := s.ready[:0]
	for _, m := range s.ready {
		if !only[m.rec.Partition] {
			kept = append(kept, m)
		}
	}
	s.ready = kept
	s.mu.Unlock()
}

func (s *kafkaSource) Publish(ctx context.Context, dest string, msgs []Outgoing) error {
	rs := make([]*kgo.Record, len(msgs))
	for i, o := range msgs {
		rs[i] = &kgo.Record{Topic: dest, Key: []byte(o.ID), Value: o.Data, Headers: []kgo.RecordHeader{{Key: RequestIDHeader, Value: []byte(o.ID)}}}
	}
	if err := s.cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return fmt.Errorf("cannot publish to %s: %w", dest, err)
	}
	return nil
}

// Lag sums, over the assigned partitions, the messages between the
// committed offset and the high watermark.
func (s *kafkaSource) Lag(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	ids := make([]int32, 0, len(s.parts))
	for id := range s.parts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		p := s.parts[id]
		n += max(0, p.hwm-max(p.committed, 0))
	}
	return n, nil
}

// kafkaMessage is one delivery of a Kafka record.
type kafkaMessage struct {
	src      *kafkaSource
	rec      *kgo.Record
	delivery int
}

func (m *kafkaMessage) Data() []byte            { return m.rec.Value }
func (m *kafkaMessage) Delivery() int           { return m.delivery }
func (m *kafkaMessage) Enqueued() time.Time     { return m.rec.Timestamp }
func (m *kafkaMessage) Working(context.Context) {}

func (m *kafkaMessage) Ack(context.Context) error {
	s := m.src
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.parts[m.rec.Partition]; ok {
		delete(p.pending, m.rec.Offset)
	}
	return nil
}

func (m *kafkaMessage) Nak(_ context.Context, delay time.Duration) error {
	next := &kafkaMessage{src: m.src, rec: m.rec, delivery: m.delivery + 1}
	time.AfterFunc(delay, func() {
		s := m.src
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.parts[m.rec.Partition]; ok {
			s.ready = append(s.ready, next)
		}
	})
	return nil
}

package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamgate/streamgate/config"
)

// kafkaJournal keeps published request ids in a one-partition topic,
// streamgate-bridge-done.GROUP.TOPIC, compacted and deleted after the
// dedupe window: one record per id (key: the id, value: when, in Unix
// milliseconds). It is read whole at start into memory; Seen then asks
// memory only, Record writes through.
type kafkaJournal struct {
	topic string
	cl    *kgo.Client
	seen  *seenCache
}

func journalTopic(k *config.BridgeKafka) string {
	return "streamgate-bridge-done." + k.Group + "." + k.Topic
}

func openKafkaJournal(ctx context.Context, k *config.BridgeKafka, cfg *config.Bridge) (*kafkaJournal, error) {
	topic := journalTopic(k)
	reader, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ClientID("streamgate-bridge-journal"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return nil, fmt.Errorf("cannot create the Kafka client: %w", err)
	}
	j := &kafkaJournal{topic: topic, cl: reader, seen: newSeenCache(cfg.DedupeEntries, cfg.DedupeWindow, time.Now)}
	err = j.load(ctx, cfg.DedupeWindow)
	reader.Close()
	if err != nil {
		return nil, err
	}
	j.cl, err = kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ClientID("streamgate-bridge-journal"), kgo.ProducerLinger(0))
	if err != nil {
		return nil, fmt.Errorf("cannot create the Kafka client: %w", err)
	}
	return j, nil
}

// load creates the journal topic when missing and reads it to its end.
func (j *kafkaJournal) load(ctx context.Context, window time.Duration) error {
	adm := kadm.NewClient(j.cl)
	retention := strconv.FormatInt(window.Milliseconds(), 10)
	policy := "compact,delete"
	_, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &policy, "retention.ms": &retention}, j.topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("cannot create the dedupe topic %s: %w", j.topic, err)
	}
	end, err := endOffset(ctx, adm, j.topic)
	if err != nil {
		return err
	}
	for next := int64(0); next < end; {
		fs := j.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cannot read the dedupe topic %s: %w", j.topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			ms, _ := strconv.ParseInt(string(r.Value), 10, 64)
			j.seen.add(string(r.Key), time.UnixMilli(ms))
		})
	}
	return nil
}

func (j *kafkaJournal) Seen(_ context.Context, id string) (bool, error) {
	return j.seen.has(id), nil
}

func (j *kafkaJournal) Record(ctx context.Context, id string) error {
	now := time.Now()
	r := &kgo.Record{Topic: j.topic, Partition: 0, Key: []byte(id), Value: []byte(strconv.FormatInt(now.UnixMilli(), 10))}
	if err := j.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return err
	}
	j.seen.add(id, now)
	return nil
}

func (j *kafkaJournal) close() { j.cl.Close() }

// endOffset returns the end offset of topic's partition 0, waiting up to
// ten seconds for a topic just created to get its leader.
func endOffset(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	var last error
	for range 50 {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			end, ok := ends.Lookup(topic, 0)
			switch {
			case ok && end.Err == nil:
				return end.Offset, nil
			case ok:
				err = end.Err
			default:
				err = errors.New("no partition 0")
			}
		}
		last = err
		sleep(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			break
		}
	}
	return 0, fmt.Errorf("cannot read the end of the dedupe topic %s: %w", topic, last)
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// testBroker is one broker as the bridge tests drive it.
type testBroker interface {
	// source is the bridge.sources entry (YAML list item) consuming it.
	source() string
	// replyTo is the result subject or topic envelopes name.
	replyTo() string
	// publish puts request messages on the request stream, in order.
	publish(t *testing.T, ids []string, msgs [][]byte)
	// collect hands every result and dead-letter message to the callbacks
	// until ctx ends.
	collect(ctx context.Context, t *testing.T, result, dead func([]byte))
}

// TestBridgeNATSExactlyOnce publishes a backlog of requests on a JetStream
// stream, restarts the gateway and then the bridge while it drains, and
// checks that every request was answered exactly once on the result stream
// and reached the backend exactly once. STREAMGATE_BRIDGE_SOAK=1 (make
// bridge-soak) sends 10,000 instead of 500.
func TestBridgeNATSExactlyOnce(t *testing.T) {
	runExactlyOnce(t, newNATSBroker(t), "nats")
}

// TestBridgeKafkaExactlyOnce is TestBridgeNATSExactlyOnce on Kafka (KRaft).
func TestBridgeKafkaExactlyOnce(t *testing.T) {
	runExactlyOnce(t, newKafkaBroker(t), "kafka")
}

func runExactlyOnce(t *testing.T, br testBroker, prefix string) {
	n := bridgeRequests(prefix)
	s := startBridgeSetup(t, br.source(), false, fakellm.Options{Tokens: 4})
	ta := newTally()
	var dead atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br.collect(ctx, t, func(b []byte) { ta.add(t, b) }, func(b []byte) {
		dead.Add(1)
		t.Logf("dead letter: %.300s", b)
	})
	ids := requestIDs(prefix, n)
	chunked := func(id string) bool { return strings.HasSuffix(id, "7") } // every tenth streams its chunks
	msgs := make([][]byte, n)
	for i, id := range ids {
		msgs[i] = envelope(id, "model-a", "", br.replyTo(), chunked(id))
	}
	t0 := time.Now()
	br.publish(t, ids, msgs)
	publishTook := time.Since(t0)

	var gwDown, bridgeDown time.Duration
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		if !waitAnswered(ctx, ta, n/3) {
			return
		}
		r := time.Now()
		s.gateway.stop(t)
		s.gateway.start()
		if err := s.gatewayReady(60 * time.Second); err != nil {
			t.Error(err)
			return
		}
		gwDown = time.Since(r)
		if !waitAnswered(ctx, ta, 2*n/3) {
			return
		}
		r = time.Now()
		s.bridge.stop(t)
		s.bridge.start()
		bridgeDown = time.Since(r)
	}()
	limit := 3 * time.Minute
	if n > 1000 {
		limit = 20 * time.Minute
	}
	deadline := time.Now().Add(limit)
	for ta.count() < n && time.Now().Before(deadline) && !s.bridge.failed.Load() && !s.gateway.failed.Load() {
		time.Sleep(20 * time.Millisecond)
	}
	drained := time.Since(t0)
	select {
	case <-restarted:
	case <-time.After(time.Minute):
		t.Error("the restarts did not finish")
	}
	time.Sleep(2 * time.Second) // a late duplicate would arrive by now
	require.Equal(t, n, ta.count(), "answered requests")
	ta.check(t, ids, chunked)
	counts := s.backend.counts()
	notOnce := 0
	for _, id := range ids {
		if counts[id] != 1 {
			notOnce++
			if notOnce <= 5 {
				t.Errorf("request %s reached the backend %d times", id, counts[id])
			}
		}
	}
	assert.Zero(t, notOnce, "requests not run exactly once at the backend")
	assert.Zero(t, dead.Load(), "dead letters")

	lat := measureLatency(t, br, ta, prefix, 40)
	acks := scrapeLines(t, s.metrics, `streamgate_bridge_messages_total`)
	assert.NotEmpty(t, acks, "bridge message counters on /metrics")
	assert.NotEmpty(t, scrapeLines(t, s.metrics, `streamgate_bridge_lag_messages{`), "lag gauge on /metrics")
	exported := strings.Join(scrapeLines(t, s.metrics, ""), "\n")
	assert.GreaterOrEqual(t, checkDashboard(t, exported, func(m string) bool { return strings.HasPrefix(m, bridgeMetricPrefix) }), 5,
		"the dashboard's bridge row queries the bridge's metrics")
	t.Logf("FIGURES %s: %d requests (every tenth streamed as chunks) published in %s, all answered in %s with a gateway restart (%s down) and a bridge restart (%s): %.0f requests/s; unloaded end-to-end latency over %d sequential requests p50 %s p99 %s; bridge counters after the restart: %s",
		prefix, n, publishTook.Round(time.Millisecond), drained.Round(time.Millisecond), gwDown.Round(time.Millisecond), bridgeDown.Round(time.Millisecond),
		float64(n)/drained.Seconds(), len(lat), percentile(lat, 0.5).Round(100*time.Microsecond), percentile(lat, 0.99).Round(100*time.Microsecond), strings.Join(acks, "; "))
}

// waitAnswered waits until ta counts n answers; false when ctx ended.
func waitAnswered(ctx context.Context, ta *tally, n int) bool {
	for ta.count() < n {
		if ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// measureLatency sends k requests one at a time and returns each one's
// time from publish to its result arriving.
func measureLatency(t *testing.T, br testBroker, ta *tally, prefix string, k int) []time.Duration {
	var out []time.Duration
	for i := range k {
		id := fmt.Sprintf("%s-latency-%03d", prefix, i)
		before := ta.count()
		start := time.Now()
		br.publish(t, []string{id}, [][]byte{envelope(id, "model-a", "", br.replyTo(), false)})
		deadline := start.Add(10 * time.Second)
		for ta.count() == before && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// gatewayReady waits until the gateway answers (401: auth is on).
func (s *bridgeSetup) gatewayReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if gatewayAnswers(s.url) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the gateway is not ready after %s", limit)
}

// natsBroker is nats-server with JetStream: requests on REQ (req.>),
// results on RES (res.>), dead letters on DEAD (dead.>).
type natsBroker struct {
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newNATSBroker(t *testing.T) *natsBroker {
	url := startNATSServer(t)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, subj := range map[string]string{"REQ": "req.>", "RES": "res.>", "DEAD": "dead.>"} {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}})
		require.NoError(t, err)
	}
	return &natsBroker{url: url, nc: nc, js: js}
}

func (b *natsBroker) source() string {
	return fmt.Sprintf("    - name: nats-requests\n      nats: {url: %q, stream: REQ, subject: req.e2e}\n      dead_letter: dead.e2e\n      credential: batch\n", b.url)
}

func (b *natsBroker) replyTo() string { return "res.e2e" }

func (b *natsBroker) publish(t *testing.T, ids []string, msgs [][]byte) {
	for i, m := range msgs {
		msg := nats.NewMsg("req.e2e")
		msg.Data = m
		msg.Header.Set(jetstream.MsgIDHeader, ids[i])
		_, err := b.js.PublishMsgAsync(msg)
		require.NoError(t, err)
	}
	select {
	case <-b.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatal("publishing the requests took over 60s")
	}
}

func (b *natsBroker) collect(ctx context.Context, t *testing.T, result, dead func([]byte)) {
	for stream, f := range map[string]func([]byte){"RES": result, "DEAD": dead} {
		cons, err := b.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		require.NoError(t, err)
		cc, err := cons.Consume(func(m jetstream.Msg) { f(m.Data()) })
		require.NoError(t, err)
		context.AfterFunc(ctx, cc.Stop)
	}
}

// kafkaBroker is Kafka in KRaft mode: requests on topic requests (4
// partitions), results on results, dead letters on dead.
type kafkaBroker struct {
	addr string
	cl   *kgo.Client
}

func newKafkaBroker(t *testing.T) *kafkaBroker {
	addr := startKafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(5*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 4, 1, nil, "requests")
	require.NoError(t, err)
	_, err = adm.CreateTopic(ctx, 4, 1, nil, "results")
	require.NoError(t, err)
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "dead")
	require.NoError(t, err)
	return &kafkaBroker{addr: addr, cl: cl}
}

func (b *kafkaBroker) source() string {
	return fmt.Sprintf("    - name: kafka-requests\n      kafka: {brokers: [%q], topic: requests, group: e2e}\n      dead_letter: dead\n      credential: batch\n", b.addr)
}

func (b *kafkaBroker) replyTo() string { return "results" }

func (b *kafkaBroker) publish(t *testing.T, ids []string, msgs [][]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		rs[i] = &kgo.Record{Topic: "requests", Key: []byte(ids[i]), Value: m}
	}
	require.NoError(t, b.cl.ProduceSync(ctx, rs...).FirstErr())
}

func (b *kafkaBroker) collect(ctx context.Context, t *testing.T, result, dead func([]byte)) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumeTopics("results", "dead"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	require.NoError(t, err)
	go func() {
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				if r.Topic == "dead" {
					dead(r.Value)
				} else {
					result(r.Value)
				}
			})
		}
	}()
}

// TestBridgeRefusals runs the bridge inside `streamgate run` (bridge.run)
// and sends it what it must not run: each goes to the dead-letter subject
// with its reason and an OpenAI error body, and the requester gets the
// same error as its result; a redelivered request already answered is not
// run again.
func TestBridgeRefusals(t *testing.T) {
	br := newNATSBroker(t)
	s := startBridgeSetup(t, br.source(), true, fakellm.Options{Tokens: 2})
	ta := newTally()
	deadCh := make(chan []byte, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br.collect(ctx, t, func(b []byte) { ta.add(t, b) }, func(b []byte) { deadCh <- b })
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	cases := []struct {
		id, msg       string
		reason        string
		status        int // of the result the requester gets; 0: none (no envelope)
		openAIErrType string
	}{
		{"bad-json", `{"id": "bad-json", "reply_to": `, "invalid_envelope", 0, "invalid_request_error"},
		{"bad-priority", `{"id":"bad-priority","reply_to":"res.e2e","priority":"urgent","body":{"model":"model-a"}}`, "invalid_envelope", 400, "invalid_request_error"},
		{"unknown-model", string(envelope("unknown-model", "model-x", "", "res.e2e", false)), "model_not_found", 404, "invalid_request_error"},
		{"denied-tenant", string(envelope("denied-tenant", "model-a", "guest", "res.e2e", false)), "permission_denied", 403, "permission_error"},
		{"unknown-credential", string(envelope("unknown-credential", "model-a", "nobody", "res.e2e", false)), "unknown_credential", 401, "invalid_request_error"},
		{"late", strings.Replace(string(envelope("late", "model-a", "", "res.e2e", false)), `{"body"`, `{"deadline":"`+past+`","body"`, 1), "deadline_exceeded", 504, "server_error"},
	}
	for _, c := range cases {
		br.publish(t, []string{c.id}, [][]byte{[]byte(c.msg)})
	}
	dead := map[string]map[string]any{}
	for range cases {
		select {
		case b := <-deadCh:
			var dl map[string]any
			require.NoError(t, json.Unmarshal(b, &dl))
			key, _ := dl["id"].(string)
			if key == "" {
				key = "bad-json"
			}
			dead[key] = dl
		case <-time.After(30 * time.Second):
			t.Fatalf("dead letters: got %d of %d", len(dead), len(cases))
		}
	}
	for _, c := range cases {
		dl := dead[c.id]
		require.NotNil(t, dl, "no dead letter for %s", c.id)
		assert.Equal(t, c.reason, dl["reason"], "%s: reason", c.id)
		assert.Equal(t, "nats-requests", dl["source"])
		assert.Equal(t, c.msg, dl["message"], "%s: the original message", c.id)
		errBody, _ := dl["body"].(map[string]any)["error"].(map[string]any)
		require.NotNil(t, errBody, "%s: an OpenAI error body: %v", c.id, dl["body"])
		assert.Equal(t, c.openAIErrType, errBody["type"], "%s", c.id)
		assert.Equal(t, c.reason, errBody["code"], "%s", c.id)
		assert.NotEmpty(t, errBody["message"], "%s", c.id)
	}
	// Each requester hears back once, with the status; a message without
	// an envelope has nobody to answer.
	require.Eventually(t, func() bool { return ta.count() == len(cases)-1 }, 10*time.Second, 20*time.Millisecond)
	ta.mu.Lock()
	for _, c := range cases[1:] {
		if assert.Len(t, ta.answers[c.id], 1, c.id) {
			assert.Equal(t, c.status, ta.answers[c.id][0].Status, c.id)
		}
	}
	ta.mu.Unlock()

	// A request published twice (a producer retry past JetStream's own
	// duplicate window) runs once and is answered once.
	ok := envelope("twice", "model-a", "", "res.e2e", false)
	br.publish(t, []string{"twice-1"}, [][]byte{ok})
	require.Eventually(t, func() bool { return ta.count() == len(cases) }, 10*time.Second, 20*time.Millisecond)
	br.publish(t, []string{"twice-2"}, [][]byte{ok})
	require.Eventually(t, func() bool {
		return len(scrapeLines(t, s.metrics, `streamgate_bridge_messages_total{outcome="duplicate"`)) == 1
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, 1, s.backend.counts()["twice"], "the second delivery was not run")
	ta.mu.Lock()
	assert.Len(t, ta.answers["twice"], 1)
	ta.mu.Unlock()
	assert.Empty(t, s.backend.counts()["unknown-credential"], "a refused request never reaches the backend")

	// A reply subject no stream captures gets a plain NATS message.
	sub, err := br.nc.SubscribeSync("core.e2e")
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, br.nc.Flush())
	br.publish(t, []string{"core-reply"}, [][]byte{envelope("core-reply", "model-a", "", "core.e2e", false)})
	msg, err := sub.NextMsg(10 * time.Second)
	require.NoError(t, err, "no result on the core subject")
	assert.Equal(t, "core-reply", msg.Header.Get("Streamgate-Request-Id"))
	var res replyMessage
	require.NoError(t, json.Unmarshal(msg.Data, &res))
	assert.Equal(t, 200, res.Status)
	assert.NotEmpty(t, res.Body)
}

package bridge

import (
	"context"
	"time"
)

// Source is one request stream on a broker, and the way back: where the
// bridge publishes results and dead letters. Implementations: natsSource,
// kafkaSource.
type Source interface {
	// Name labels the source's metrics and logs.
	Name() string
	// Fetch returns between 1 and n messages, or none when about a second
	// passed without any; an error ends the source.
	Fetch(ctx context.Context, n int) ([]Message, error)
	// Publish sends msgs to the subject or topic dest, in order, and
	// returns once the broker has all of them.
	Publish(ctx context.Context, dest string, msgs []Outgoing) error
	// Journal is where published request ids are remembered.
	Journal() Journal
	// Lag returns the messages not yet taken by the bridge.
	Lag(ctx context.Context) (int64, error)
	// Close stops consuming; messages not acknowledged are redelivered.
	Close() error
}

// Message is one delivery of a request message.
type Message interface {
	// Data is the envelope as published.
	Data() []byte
	// Delivery counts this message's deliveries, 1 for the first.
	Delivery() int
	// Enqueued is when the message entered the source.
	Enqueued() time.Time
	// Ack removes the message from the source.
	Ack(ctx context.Context) error
	// Nak asks for a redelivery after delay.
	Nak(ctx context.Context, delay time.Duration) error
	// Working tells the broker the message is still being handled.
	Working(ctx context.Context)
}

// Outgoing is one message the bridge publishes.
type Outgoing struct {
	// Key identifies it for the broker's own deduplication (NATS
	// Nats-Msg-Id): the request id, with the attempt and sequence number
	// for a chunk.
	Key string
	// ID is the request id: a header on the message, and the Kafka record
	// key, so all of one request's messages share a partition, in order.
	ID string
	// Data is the JSON message.
	Data []byte
}

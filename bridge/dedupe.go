package bridge

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Journal remembers, beyond one process, the request ids whose results
// were published: the NATS source keeps them in a JetStream key-value
// bucket, the Kafka source in a compacted topic. Both expire entries after
// bridge.dedupe_window.
type Journal interface {
	// Seen reports whether id's result was published within the window.
	Seen(ctx context.Context, id string) (bool, error)
	// Record stores id as published; it returns once the broker has it.
	Record(ctx context.Context, id string) error
}

// seenCache is the in-memory front of a Journal: at most max ids, each
// for at most window, oldest forgotten first. Safe for concurrent use.
type seenCache struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	order  *list.List // of seenEntry, oldest at the front
	byID   map[string]*list.Element
	now    func() time.Time
}

type seenEntry struct {
	id string
	at time.Time
}

func newSeenCache(max int, window time.Duration, now func() time.Time) *seenCache {
	return &seenCache{max: max, window: window, order: list.New(), byID: map[string]*list.Element{}, now: now}
}

// has reports whether id was added within the window.
func (c *seenCache) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire()
	_, ok := c.byID[id]
	return ok
}

// add remembers id as published at time at (now when zero).
func (c *seenCache) add(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.IsZero() {
		at = c.now()
	}
	if c.now().Sub(at) >= c.window {
		return
	}
	if _, ok := c.byID[id]; ok {
		return
	}
	c.byID[id] = c.order.PushBack(seenEntry{id: id, at: at})
	for c.order.Len() > c.max {
		c.remove(c.order.Front())
	}
}

// len returns how many ids are remembered.
func (c *seenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// expire drops the ids older than the window; c.mu is held. Entries are
// appended in time order but may be loaded out of it, so this stops at the
// first entry still inside the window: a stale entry behind it lives until
// it reaches the front or max evicts it.
func (c *seenCache) expire() {
	cut := c.now().Add(-c.window)
	for e := c.order.Front(); e != nil && !e.Value.(seenEntry).at.After(cut); e = c.order.Front() {
		c.remove(e)
	}
}

func (c *seenCache) remove(e *list.Element) {
	delete(c.byID, e.Value.(seenEntry).id)
	c.order.Remove(e)
}

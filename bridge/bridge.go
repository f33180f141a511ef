package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/streamgate/streamgate/config"
)

// Bridge runs the request loop of every source. Build it with New, run it
// with Run; it is not reusable after Run returns.
type Bridge struct {
	cfg     *config.Bridge
	keys    map[string]string // credential name → key; never logged
	sources []*source
	adm     *admission
	client  *http.Client
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
}

// source is a Source with its config and in-memory dedupe cache.
type source struct {
	Source
	cfg  config.BridgeSource
	seen *seenCache
}

// New builds the bridge of cfg: it reads the credentials and connects
// every source (NATS, Kafka). The caller must Run it or Close it.
func New(ctx context.Context, cfg *config.Bridge, metrics *Metrics, log *slog.Logger) (*Bridge, error) {
	b := &Bridge{cfg: cfg, keys: map[string]string{}, metrics: metrics, log: log, now: time.Now,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.MaxInFlight, IdleConnTimeout: time.Minute}}}
	b.adm = newAdmission(cfg.MaxInFlight, b.now)
	for _, c := range cfg.Credentials {
		k, err := config.BridgeCredentialKey(c)
		if err != nil {
			return nil, err
		}
		b.keys[c.Name] = k
	}
	for _, sc := range cfg.Sources {
		var (
			s   Source
			err error
		)
		switch {
		case sc.NATS != nil:
			s, err = dialNATS(ctx, sc, cfg)
		case sc.Kafka != nil:
			s, err = dialKafka(ctx, sc, cfg, log)
		}
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("bridge source %q: %w", sc.Name, err)
		}
		b.sources = append(b.sources, &source{Source: s, cfg: sc, seen: newSeenCache(cfg.DedupeEntries, cfg.DedupeWindow, b.now)})
	}
	return b, nil
}

// Close disconnects every source.
func (b *Bridge) Close() {
	for _, s := range b.sources {
		_ = s.Close()
	}
}

// Run consumes every source until ctx ends, then stops fetching, lets the
// requests in flight finish (their results are published and acknowledged)
// and closes the sources. It returns the first source's failure.
func (b *Bridge) Run(ctx context.Context) error {
	var wg, handlers sync.WaitGroup
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, s := range b.sources {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := b.consume(ctx, s, &handlers); err != nil {
				cancel(fmt.Errorf("bridge source %q: %w", s.Name(), err))
			}
		}()
		go func() {
			defer wg.Done()
			b.watchLag(ctx, s)
		}()
	}
	wg.Wait()
	handlers.Wait()
	b.Close()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// fetchBatch bounds the messages one Fetch asks for.
const fetchBatch = 32

// consume takes messages from s as the admission window opens and handles
// each in its own goroutine (tracked by handlers). The handlers outlive
// ctx: a request taken is finished, not abandoned.
func (b *Bridge) consume(ctx context.Context, s *source, handlers *sync.WaitGroup) error {
	work := context.WithoutCancel(ctx)
	for {
		n := b.adm.acquire(ctx, fetchBatch)
		if n == 0 {
			return nil
		}
		msgs, err := s.Fetch(ctx, n)
		b.adm.release(n - len(msgs))
		if ctx.Err() != nil {
			// Taken before the stop: still handled.
			b.start(work, s, msgs, handlers)
			return nil
		}
		if err != nil {
			return err
		}
		b.start(work, s, msgs, handlers)
	}
}

func (b *Bridge) start(ctx context.Context, s *source, msgs []Message, handlers *sync.WaitGroup) {
	for _, m := range msgs {
		handlers.Add(1)
		b.metrics.inFlight.WithLabelValues(s.Name()).Inc()
		go func() {
			defer handlers.Done()
			defer b.metrics.inFlight.WithLabelValues(s.Name()).Dec()
			b.handle(ctx, s, m)
		}()
	}
}

// lagEvery is how often each source's lag is read.
const lagEvery = 2 * time.Second

func (b *Bridge) watchLag(ctx context.Context, s *source) {
	t := time.NewTicker(lagEvery)
	defer t.Stop()
	for {
		limit, _ := b.adm.window()
		b.metrics.window.Set(float64(limit))
		if n, err := s.Lag(ctx); err == nil {
			b.metrics.lag.WithLabelValues(s.Name()).Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

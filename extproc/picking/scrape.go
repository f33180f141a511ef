package picking

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/config"
)

const (
	// maxBody bounds one scrape's body (after gzip decoding); a larger
	// body fails as too_large. vLLM's whole /metrics is ~100-300 KiB.
	maxBody = 4 << 20
	// keepBuffer is the largest buffer a scraper keeps between scrapes.
	keepBuffer = 1 << 20
	// scrapeAccept asks for the classic text format, the one parsed.
	scrapeAccept = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
)

// newScrapeClient is the HTTP client every scraper of a pool shares:
// keep-alive with a bounded number of connections per endpoint (each
// scraper has at most one request in flight), no proxy (model servers are
// reached directly, as Envoy reaches them), no redirects.
func newScrapeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:            (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:    2,
			MaxConnsPerHost:        4,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// scrapeSpec is what a scraper was started with; a reload that changes it
// restarts the scraper.
type scrapeSpec struct {
	metrics, path     string
	names             config.MetricNames
	interval, timeout time.Duration
}

// newScrapeSpec is c's scrape settings; a zero interval or timeout (a
// config that skipped defaults) gets the config defaults rather than a
// busy loop.
func newScrapeSpec(c *config.Picking) scrapeSpec {
	s := scrapeSpec{metrics: c.Metrics, path: c.MetricsPath, names: c.MetricNames, interval: c.Interval, timeout: c.Timeout}
	if s.interval <= 0 {
		s.interval = 50 * time.Millisecond
	}
	if s.timeout <= 0 {
		s.timeout = min(s.interval, time.Second)
	}
	return s
}

// scraper polls one endpoint's metrics and stores each good scrape in it.
// Its fields are owned by its goroutine once started.
type scraper struct {
	ep     *Endpoint
	spec   scrapeSpec
	url    string
	client *http.Client
	parser *parser
	body   bytes.Buffer
	errs   [numErrReasons]prometheus.Counter
	log    *slog.Logger
	now    func() time.Time
	// failing is true from a failed scrape to the next good one, so an
	// outage is logged once.
	failing bool

	cancel context.CancelFunc
	done   chan struct{}
}

func (p *Pool) newScraper(k scrapeKey, e *Endpoint, spec scrapeSpec, d dialect) *scraper {
	return &scraper{
		ep:     e,
		spec:   spec,
		url:    "http://" + e.Addr + spec.path,
		client: p.client,
		parser: newParser(d),
		errs:   p.metrics.errorCounters(k.backend, k.addr),
		log:    p.log.With("backend", k.backend, "endpoint", k.addr),
		now:    p.now,
		cancel: func() {},
		done:   make(chan struct{}),
	}
}

// start runs s until ctx or s.cancel ends it; s.done closes then.
func (s *scraper) start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	go s.run(ctx)
}

func (s *scraper) run(ctx context.Context) {
	defer close(s.done)
	jitter := time.NewTimer(rand.N(s.spec.interval))
	select {
	case <-ctx.Done():
		jitter.Stop()
		return
	case <-jitter.C:
	}
	tick := time.NewTicker(s.spec.interval)
	defer tick.Stop()
	for {
		s.observe(ctx, s.scrape(ctx))
		// A good scrape may show room, a failed one may leave the
		// endpoint stale (no longer known to be full): either way a
		// waiter may go.
		s.ep.wake()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// observe counts and logs a scrape's outcome; an outage is logged when it
// starts and when it ends.
func (s *scraper) observe(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // stopped mid-scrape: not the endpoint's fault
	}
	var se *scrapeError
	switch {
	case err == nil:
		if s.failing {
			s.failing = false
			s.log.Info("picking: endpoint metrics recovered")
		}
	case errors.As(err, &se):
		s.errs[se.reason].Inc()
		if !s.failing {
			s.failing = true
			s.log.Warn("picking: cannot scrape endpoint metrics; its last scrape ages out and its in-flight count decides", "reason", errReasons[se.reason], "error", se.err)
		}
	}
}

// scrapeError is a failed scrape and its reason (an err* index).
type scrapeError struct {
	reason int
	err    error
}

func (e *scrapeError) Error() string { return e.err.Error() }
func (e *scrapeError) Unwrap() error { return e.err }

// scrape fetches, parses and stores one scrape of s.ep within the timeout.
func (s *scraper) scrape(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.spec.timeout)
	defer cancel()
	body, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	m, err := s.parser.parse(body)
	s.trim()
	if errors.Is(err, errNoMetrics) {
		return &scrapeError{errMissing, fmt.Errorf("cannot read metrics of %s: %w", s.url, err)}
	}
	if err != nil {
		return &scrapeError{errParse, fmt.Errorf("cannot read metrics of %s: %w", s.url, err)}
	}
	s.ep.Store(m, s.now())
	return nil
}

// fetch GETs s.url into s.body, bounded by maxBody.
func (s *scraper) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, &scrapeError{errConnect, fmt.Errorf("cannot build scrape request: %w", err)}
	}
	req.Header.Set("Accept", scrapeAccept)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // let a short error body reuse the connection
		return nil, &scrapeError{errStatus, fmt.Errorf("cannot scrape %s: status %d", s.url, resp.StatusCode)}
	}
	if resp.ContentLength > maxBody {
		return nil, &scrapeError{errTooLarge, fmt.Errorf("cannot scrape %s: body of %d bytes is over %d", s.url, resp.ContentLength, maxBody)}
	}
	s.body.Reset()
	n, err := s.body.ReadFrom(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, s.transportError(ctx, err)
	}
	if n > maxBody {
		return nil, &scrapeError{errTooLarge, fmt.Errorf("cannot scrape %s: body is over %d bytes", s.url, maxBody)}
	}
	return s.body.Bytes(), nil
}

// transportError names a failed request or body read: timeout when the
// scrape's deadline passed, connect otherwise.
func (s *scraper) transportError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &scrapeError{errTimeout, fmt.Errorf("cannot scrape %s within %v: %w", s.url, s.spec.timeout, err)}
	}
	return &scrapeError{errConnect, fmt.Errorf("cannot scrape %s: %w", s.url, err)}
}

// trim drops buffers an unusually large scrape grew, so an endpoint costs
// at most keepBuffer between scrapes.
func (s *scraper) trim() {
	if s.body.Cap() > keepBuffer {
		s.body = bytes.Buffer{}
	}
	if s.parser.buf.Cap() > keepBuffer {
		s.parser.buf = bytes.Buffer{}
	}
}

package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/streamgate/streamgate/bridge"
	"github.com/streamgate/streamgate/contract"
)

// maxResponseBytes bounds one line's response kept for the output file.
const maxResponseBytes = 16 << 20

// Runner runs batches: each line through the gateway at GatewayURL with
// the owner's key, under the bridge's AIMD admission window. It is the
// only writer of a batch once created. Safe for concurrent use.
type Runner struct {
	Store *Store
	// GatewayURL is the gateway's own listener, e.g. http://127.0.0.1:10000.
	GatewayURL string
	// Key returns the API key lines of tenant's batches are sent with.
	Key func(tenant string) (string, bool)
	// Priority is sent as x-streamgate-priority (e.g. sheddable).
	Priority string
	// MaxAttempts bounds the tries of a line refused as overloaded (429,
	// 503), failed with 5xx or unanswered; Backoff is the first delay,
	// doubling; a longer Retry-After wins.
	MaxAttempts int
	Backoff     time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	Window  *bridge.Window
	Client  *http.Client
	Log     *slog.Logger
	Now     func() time.Time

	mu      sync.Mutex // serialises changes of a batch's state
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// Resume restarts every batch a previous run left unfinished: lines with
// a recorded result are not run again.
func (r *Runner) Resume(ctx context.Context) {
	for _, b := range r.Store.Batches("") {
		switch b.Status {
		case Validating, InProgress:
			r.Start(ctx, b.ID)
		case Finalizing, Cancelling:
			r.finish(b.ID)
		}
	}
}

// Wait returns once every batch started has stopped (ctx ended or done).
func (r *Runner) Wait() { r.wg.Wait() }

// Start runs batch id in the background until it is done, cancelled or
// ctx ends.
func (r *Runner) Start(ctx context.Context, id string) {
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	if r.running == nil {
		r.running = map[string]context.CancelFunc{}
	}
	r.running[id] = cancel
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		if r.run(ctx, id) {
			r.finish(id)
		}
		r.mu.Lock()
		delete(r.running, id)
		r.mu.Unlock()
	}()
}

// Cancel moves tenant's batch id to cancelling and stops its requests;
// it ends cancelled with the results so far.
func (r *Runner) Cancel(tenant, id string) (*Batch, error) {
	r.mu.Lock()
	b, err := r.Store.Batch(tenant, id)
	if err == nil && b.Status != Cancelling {
		if err = b.moveTo(Cancelling, r.Now().Unix()); err == nil {
			err = r.Store.SaveBatch(b)
		}
	}
	stop, running := r.running[id]
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if running {
		stop() // run returns true: finish moves it to cancelled
	} else {
		r.finish(id)
	}
	return r.Store.Batch(tenant, id)
}

// update applies change to batch id under the runner's lock and saves it.
func (r *Runner) update(id string, change func(*Batch) error) (*Batch, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.Store.Batch("", id)
	if err != nil {
		return nil, err
	}
	if err := change(b); err != nil {
		return nil, err
	}
	return b, r.Store.SaveBatch(b)
}

// run sends every line without a result; true when the batch should be
// finished (all lines done, cancelled or expired), false when ctx ended
// (a shutdown: the batch resumes on the next start).
func (r *Runner) run(ctx context.Context, id string) bool {
	b, err := r.Store.Batch("", id)
	if err != nil {
		return false
	}
	lines, done, err := r.input(b)
	if err != nil {
		r.Log.Warn("batch: cannot read its input", "batch", id, "error", err.Error())
		return false
	}
	if b.Status == Validating {
		if _, err := r.update(id, func(b *Batch) error {
			b.RequestCounts.Total = len(lines)
			return b.moveTo(InProgress, r.Now().Unix())
		}); err != nil {
			return false
		}
	}
	expires := time.Unix(*b.ExpiresAt, 0)
	ctx, stop := context.WithDeadline(ctx, expires)
	defer stop()
	var wg sync.WaitGroup
	for _, l := range lines {
		if _, ok := done[l.CustomID]; ok {
			continue
		}
		if !r.Window.Acquire(ctx) {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, ok := r.send(ctx, b.Tenant, l)
			if !ok {
				return
			}
			if err := r.Store.AppendResult(id, res); err != nil {
				r.Log.Warn("batch: cannot record a result; the request runs again after a restart", "batch", id, "error", err.Error())
			}
			_, _ = r.update(id, func(b *Batch) error {
				if res.OK {
					b.RequestCounts.Completed++
				} else {
					b.RequestCounts.Failed++
				}
				return nil
			})
		}()
	}
	wg.Wait()
	cur, err := r.Store.Batch("", id)
	return err == nil && (ctx.Err() == nil || cur.Status == Cancelling || !r.Now().Before(expires))
}

// input returns batch b's lines and the results recorded so far.
func (r *Runner) input(b *Batch) ([]Line, map[string]Result, error) {
	data, err := r.Store.Content(b.Tenant, b.InputFileID)
	if err != nil {
		return nil, nil, err
	}
	lines, err := ParseInput(data, b.Endpoint)
	if err != nil {
		return nil, nil, err
	}
	done, err := r.Store.Results(b.ID)
	return lines, done, err
}

// outputLine is a line of an output or error file (OpenAI's format).
type outputLine struct {
	ID       string        `json:"id"`
	CustomID string        `json:"custom_id"`
	Response *lineResponse `json:"response"`
	Error    *lineError    `json:"error"`
}

type lineResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

type lineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// send runs line l for tenant, retrying overloads; ok is false when ctx
// ended first (nothing is recorded: the line runs again).
func (r *Runner) send(ctx context.Context, tenant string, l Line) (res Result, ok bool) {
	out := outputLine{ID: newID("batch_req_"), CustomID: l.CustomID}
	key, known := r.Key(tenant)
	if !known {
		r.Window.Done(false, false, 0)
		out.Error = &lineError{Code: "unknown_credential", Message: "The gateway holds no batch credential for this tenant."}
		return encodeResult(out, false), true
	}
	delay := r.Backoff
	for attempt := 1; ; attempt++ {
		if attempt > 1 && !r.Window.Acquire(ctx) {
			return res, false
		}
		st, reqID, body, wait, ttfb, err := r.try(ctx, key, l)
		overloaded := st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable
		r.Window.Done(err == nil && st < 300, overloaded, ttfb)
		if ctx.Err() != nil {
			return res, false
		}
		retry := err != nil || overloaded || st >= 500 || st == http.StatusRequestTimeout
		if !retry || attempt >= r.MaxAttempts {
			if err != nil {
				out.Error = &lineError{Code: "request_failed", Message: fmt.Sprintf("The gateway did not answer after %d attempts.", attempt)}
				return encodeResult(out, false), true
			}
			out.Response = &lineResponse{StatusCode: st, RequestID: reqID, Body: body}
			return encodeResult(out, st < 300), true
		}
		select {
		case <-ctx.Done():
			return res, false
		case <-time.After(max(delay, wait)):
		}
		delay *= 2
	}
}

// try is one attempt of l: the status, request id, JSON body, Retry-After
// and time to headers.
func (r *Runner) try(ctx context.Context, key string, l Line) (int, string, json.RawMessage, time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.GatewayURL+l.URL, bytes.NewReader(l.Body))
	if err != nil {
		return 0, "", nil, 0, 0, err
	}
	req.Header.Set("content-type", "application/json")
	if key != "" {
		req.Header.Set(contract.AuthorizationHeader, "Bearer "+key)
	}
	if r.Priority != "" {
		req.Header.Set(contract.PriorityHeader, r.Priority)
	}
	sent := r.Now()
	resp, err := r.Client.Do(req)
	if err != nil {
		return 0, "", nil, 0, 0, err
	}
	defer resp.Body.Close()
	ttfb := r.Now().Sub(sent)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, "", nil, 0, 0, err
	}
	if !json.Valid(body) {
		body, _ = json.Marshal(string(body))
	}
	wait := bridge.RetryAfter(resp.Header.Get("retry-after"), r.Now())
	return resp.StatusCode, resp.Header.Get(contract.RequestIDHeader), body, wait, ttfb, nil
}

func encodeResult(out outputLine, ok bool) Result {
	data, _ := json.Marshal(out)
	return Result{CustomID: out.CustomID, OK: ok, Line: data}
}

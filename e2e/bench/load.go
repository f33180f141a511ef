package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mode is a backend behaviour, asked of fakellm per request with its
// x-fakellm-* headers.
type Mode struct {
	Name string        `json:"name"`
	TTFT time.Duration `json:"ttft_ns"`
	ITL  time.Duration `json:"itl_ns"`
}

// The backend modes every configuration is measured in.
var (
	// ZeroDelay stresses the gateway: the backend answers as fast as it can.
	ZeroDelay = Mode{Name: "zero-delay"}
	// Realistic looks like a model server: 150 ms to the first token, then
	// 20 ms per token.
	Realistic = Mode{Name: "realistic", TTFT: 150 * time.Millisecond, ITL: 20 * time.Millisecond}
)

// Point is one load level: a backend mode, a number of concurrent streams
// and a prompt size.
type Point struct {
	Mode        Mode `json:"mode"`
	Concurrency int  `json:"concurrency"`
	PromptBytes int  `json:"prompt_bytes"`
}

func (p Point) String() string {
	return fmt.Sprintf("%s c=%d prompt=%s", p.Mode.Name, p.Concurrency, sizeName(p.PromptBytes))
}

// loadSpec is everything one load run needs.
type loadSpec struct {
	target   *target
	point    Point
	tokens   int
	warmup   time.Duration
	duration time.Duration
	drain    time.Duration
	apiKey   string
	// atWindow, when set, is called as the measured window opens (true)
	// and closes (false); runLoad returns only after both calls.
	atWindow func(open bool)
}

// streamSample is what the client saw of one stream.
type streamSample struct {
	start, end time.Time
	ttft       time.Duration
	tokens     int
}

// loadResult is the raw outcome of one load run.
type loadResult struct {
	seconds           float64 // length of the measured window(s)
	completedInWindow int
	tokensInWindow    int
	ttft              []time.Duration // streams started in the window
	itl               []time.Duration
	errors            int
	errorSamples      []string
}

// startOffset spreads the first requests of c workers evenly over one
// stream's length, so that with a delaying backend the workers do not run
// in lockstep and hit the gateway in bursts of c requests at once (which
// measures burst queueing, not steady concurrency c). Zero-delay streams
// start together.
func startOffset(i, c int, m Mode, tokens int) time.Duration {
	length := m.TTFT + time.Duration(max(tokens-1, 0))*m.ITL
	return length * time.Duration(i) / time.Duration(c)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// merge adds another run of the same point to r.
func (r *loadResult) merge(o *loadResult) {
	r.seconds += o.seconds
	r.completedInWindow += o.completedInWindow
	r.tokensInWindow += o.tokensInWindow
	r.ttft = append(r.ttft, o.ttft...)
	r.itl = append(r.itl, o.itl...)
	r.errors += o.errors
	for _, m := range o.errorSamples {
		if len(r.errorSamples) < 5 {
			r.errorSamples = append(r.errorSamples, m)
		}
	}
}

// worker is one client loop's state; workers share nothing while running.
type worker struct {
	client  *http.Client
	spec    *loadSpec
	body    []byte
	reader  *bufio.Reader
	samples []streamSample
	itl     []time.Duration
	errs    int
	errMsgs []string
}

// runLoad keeps spec.point.Concurrency streams open against the target for
// warmup+duration, lets running streams finish (up to drain), and returns
// what the client measured.
func runLoad(ctx context.Context, spec *loadSpec) *loadResult {
	c := spec.point.Concurrency
	tr := &http.Transport{
		MaxIdleConns:        c * 2,
		MaxIdleConnsPerHost: c * 2,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := chatBody(spec.point.PromptBytes, spec.target.AsksUsage)
	start := time.Now()
	windowStart := start.Add(spec.warmup)
	windowEnd := windowStart.Add(spec.duration)
	hardCtx, cancel := context.WithDeadline(ctx, windowEnd.Add(spec.drain))
	defer cancel()

	workers := make([]*worker, c)
	var wg sync.WaitGroup
	if spec.atWindow != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(windowStart))
			spec.atWindow(true)
			time.Sleep(time.Until(windowEnd))
			spec.atWindow(false)
		}()
	}
	for i := range workers {
		w := &worker{client: client, spec: spec, body: body, reader: newReader()}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepCtx(hardCtx, startOffset(i, c, spec.point.Mode, spec.tokens)) {
				return
			}
			for time.Now().Before(windowEnd) && hardCtx.Err() == nil {
				w.stream(hardCtx, windowStart)
			}
		}()
	}
	wg.Wait()

	res := &loadResult{seconds: windowEnd.Sub(windowStart).Seconds()}
	for _, w := range workers {
		res.errors += w.errs
		for _, m := range w.errMsgs {
			if len(res.errorSamples) < 5 {
				res.errorSamples = append(res.errorSamples, m)
			}
		}
		for _, s := range w.samples {
			if !s.end.Before(windowStart) && !s.end.After(windowEnd) {
				res.completedInWindow++
				res.tokensInWindow += s.tokens
			}
			if !s.start.Before(windowStart) {
				res.ttft = append(res.ttft, s.ttft)
			}
		}
		res.itl = append(res.itl, w.itl...)
	}
	return res
}

// stream runs one streaming chat completion and records it. Streams cut by
// the end of the run are neither samples nor errors.
func (w *worker) stream(ctx context.Context, windowStart time.Time) {
	spec := w.spec
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, spec.target.url+"/v1/chat/completions", bytes.NewReader(w.body))
	if err != nil {
		w.fail(err)
		return
	}
	setHeaders(req.Header, spec.target, spec.apiKey, spec.point.Mode, spec.tokens)
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.fail(err)
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		w.fail(fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg)))
		return
	}
	w.reader.Reset(resp.Body)
	inWindow := !start.Before(windowStart)
	s := streamSample{start: start}
	var last time.Time
	usage := false
	done, err := readEventPayloads(w.reader, func(payload []byte, token bool) {
		if !token {
			usage = usage || isUsageChunk(payload)
			return
		}
		now := time.Now()
		if s.tokens == 0 {
			s.ttft = now.Sub(start)
		} else if inWindow {
			w.itl = append(w.itl, now.Sub(last))
		}
		last = now
		s.tokens++
	})
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		w.fail(fmt.Errorf("cannot read stream: %w", err))
		return
	case !done:
		w.fail(errors.New("stream ended without [DONE]"))
		return
	case s.tokens != spec.tokens:
		w.fail(fmt.Errorf("stream carried %d tokens, want %d", s.tokens, spec.tokens))
		return
	case usage && !spec.target.AsksUsage:
		w.fail(errors.New("stream carried a usage chunk the client did not ask for"))
		return
	case !usage && spec.target.AsksUsage:
		w.fail(errors.New("stream carried no usage chunk though the client asked for one"))
		return
	}
	s.end = time.Now()
	w.samples = append(w.samples, s)
}

func (w *worker) fail(err error) {
	w.errs++
	if len(w.errMsgs) < 2 {
		w.errMsgs = append(w.errMsgs, err.Error())
	}
}

var (
	dataPrefix   = []byte("data: ")
	donePayload  = []byte("[DONE]")
	contentStart = []byte(`"content":"`)
	usageStart   = []byte(`"usage":{`)
)

// readEvents reads an OpenAI server-sent event stream, calling onEvent for
// every data event with whether it carries output text. It reports whether
// the stream ended with "data: [DONE]".
func readEvents(r *bufio.Reader, onEvent func(token bool)) (bool, error) {
	return readEventPayloads(r, func(_ []byte, token bool) { onEvent(token) })
}

// readEventPayloads is readEvents that also hands over each data payload
// (valid only during the call).
func readEventPayloads(r *bufio.Reader, onEvent func(payload []byte, token bool)) (bool, error) {
	done := false
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return done, fmt.Errorf("cannot read event: line longer than %d bytes", r.Size())
		}
		if payload, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), dataPrefix); ok {
			if bytes.Equal(payload, donePayload) {
				done = true
			} else {
				onEvent(payload, carriesText(payload))
			}
		}
		if errors.Is(err, io.EOF) {
			return done, nil
		}
		if err != nil {
			return done, err
		}
	}
}

// isUsageChunk reports whether a chat chunk carries a usage object (the
// chunk a client gets when it asked for usage); other chunks carry none or
// "usage":null.
func isUsageChunk(payload []byte) bool { return bytes.Contains(payload, usageStart) }

// carriesText reports whether a chat chunk has a non-empty content delta.
func carriesText(payload []byte) bool {
	_, rest, ok := bytes.Cut(payload, contentStart)
	return ok && len(rest) > 0 && rest[0] != '"'
}

// setHeaders adds what every benchmark request carries: the same API key
// for every configuration (ignored where there is no auth), the backend
// mode for fakellm, and the target's own headers.
func setHeaders(h http.Header, t *target, apiKey string, m Mode, tokens int) {
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Bearer "+apiKey)
	h.Set("X-Fakellm-Ttft-Ms", strconv.FormatInt(m.TTFT.Milliseconds(), 10))
	h.Set("X-Fakellm-Itl-Ms", strconv.FormatInt(m.ITL.Milliseconds(), 10))
	h.Set("X-Fakellm-Tokens", strconv.Itoa(tokens))
	for k, v := range t.headers {
		h[k] = v
	}
}

// chatBody is a streaming chat request whose user message makes the body
// promptBytes long (give or take a few bytes). With askUsage it sets
// stream_options.include_usage; without, it is what the official SDKs send
// by default, which does not ask for usage.
func chatBody(promptBytes int, askUsage bool) []byte {
	head := `{"model":"bench-model","stream":true,"max_tokens":4096,"messages":[{"role":"user","content":"`
	if askUsage {
		head = `{"model":"bench-model","stream":true,"stream_options":{"include_usage":true},"max_tokens":4096,"messages":[{"role":"user","content":"`
	}
	const tail = `"}]}`
	n := max(promptBytes-len(head)-len(tail), 1)
	var b strings.Builder
	b.Grow(len(head) + n + len(tail))
	b.WriteString(head)
	const words = "the quick brown fox jumps over the lazy dog "
	for b.Len() < len(head)+n {
		b.WriteString(words[:min(len(words), len(head)+n-b.Len())])
	}
	b.WriteString(tail)
	return []byte(b.String())
}

func newReader() *bufio.Reader { return bufio.NewReaderSize(nil, 16<<10) }

func sizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

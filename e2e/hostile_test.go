package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/auth/authtest"
)

// Hostile input through real Envoy (issue 21 item 5): request smuggling
// over raw TCP, oversized and repeated headers, path tricks against a
// tenant's endpoint rule, spoofed internal headers, bad bodies and bad
// JWTs. Each gets a clear refusal, and a counting fake proves the backend
// never saw it.

const (
	hostileKeyFull  = "sk-e2e-hostile-full-3c5e7a9b1d"
	hostileKeyEmbed = "sk-e2e-hostile-embed-8b0d2f4a6c"
)

// hostileConfig: tenant "full" may use every endpoint, tenant "embed" only
// /v1/embeddings; JWTs of the fake issuer name tenant "full".
const hostileConfig = listeners + `backends:
  - name: counted
    protocol: openai
    endpoints: [@COUNTED@]
models:
  - {name: model-a, backend: counted}
auth:
  tenants:
    - name: full
      models: ["*"]
      api_keys: [{hash: "@FULL@"}]
    - name: embed
      models: ["*"]
      endpoints: [/v1/embeddings]
      api_keys: [{hash: "@EMBED@"}]
  jwt:
    - issuer: https://idp.hostile.test
      jwks_url: @JWKS@
      audiences: [streamgate]
      tenant_claim: org
`

// countingFake is a fakellm that records every request's path and headers.
type countingFake struct {
	mu      sync.Mutex
	paths   []string
	headers []http.Header
	addr    string
}

func (c *countingFake) seen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.paths)
}

func (c *countingFake) since(n int) ([]string, []http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.paths[n:]...), append([]http.Header(nil), c.headers[n:]...)
}

type hostileGateway struct {
	*env
	fake *countingFake
	idp  *authtest.IdP
	addr string // host:port of the gateway listener
}

func startHostileGateway(t *testing.T) *hostileGateway {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &countingFake{addr: lis.Addr().String()}
	fake := fakellm.New(fakellm.Options{Name: "counted"})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.paths = append(c.paths, r.RequestURI)
		c.headers = append(c.headers, r.Header.Clone())
		c.mu.Unlock()
		fake.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "k1", "RS256")
	cfg := strings.NewReplacer("@COUNTED@", c.addr, "@FULL@", auth.HashKey(hostileKeyFull),
		"@EMBED@", auth.HashKey(hostileKeyEmbed), "@JWKS@", idp.JWKSURL()).Replace(hostileConfig)
	e := startGateway(t, cfg)
	return &hostileGateway{env: e, fake: c, idp: idp, addr: hostPort(e.gateway)}
}

// raw writes req on a new connection and returns the status of the first
// response, its body, and whether a second response followed (a smuggled
// request answered).
func (g *hostileGateway) raw(t *testing.T, req string) (status int, body string, second bool) {
	t.Helper()
	c, err := net.Dial("tcp", g.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte(req))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err, "no response to %q", req)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if r2, err := http.ReadResponse(br, nil); err == nil {
		r2.Body.Close()
		second = true
	}
	return resp.StatusCode, string(b), second
}

// refusedUnseen asserts a refusal (4xx or 501) that the backend never saw.
func (g *hostileGateway) refusedUnseen(t *testing.T, before, status int, body string) {
	t.Helper()
	assert.True(t, status >= 400 && status < 500 || status == http.StatusNotImplemented, "want a refusal, got %d: %s", status, body)
	paths, _ := g.fake.since(before)
	assert.Empty(t, paths, "the backend saw the request")
}

func TestHostileSmuggling(t *testing.T) {
	g := startHostileGateway(t)
	chat := `{"model":"model-a","messages":[{"role":"user","content":"smuggle"}]}`
	smuggled := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + hostileKeyFull +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(chat)) + "\r\n\r\n" + chat
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + hostileKeyFull + "\r\nContent-Type: application/json\r\n"
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(chat), chat)
	for name, req := range map[string]string{
		"CL.TE: content-length and chunked":  head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + smuggled,
		"TE.CL: chunked then content-length": head + "Transfer-Encoding: chunked\r\nContent-Length: " + fmt.Sprint(len(chunked)) + "\r\n\r\n" + chunked + smuggled,
		"two different content-lengths":      head + "Content-Length: " + fmt.Sprint(len(chat)) + "\r\nContent-Length: 5\r\n\r\n" + chat + smuggled,
		"content-length list":                head + "Content-Length: " + fmt.Sprint(len(chat)) + ", 5\r\n\r\n" + chat + smuggled,
		"chunked, not last":                  head + "Transfer-Encoding: chunked, identity\r\n\r\n" + chunked + smuggled,
		"obfuscated transfer-encoding":       head + "Transfer-Encoding: xchunked\r\n\r\n" + chunked + smuggled,
		"space before the colon":             head + "Transfer-Encoding : chunked\r\n\r\n" + chunked + smuggled,
		"bad chunk size":                     head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + chat + "\r\n0\r\n\r\n",
		"NUL in a header value":              head + "X-Nul: a\x00b\r\nContent-Length: " + fmt.Sprint(len(chat)) + "\r\n\r\n" + chat,
	} {
		t.Run(name, func(t *testing.T) {
			before := g.fake.seen()
			status, body, second := g.raw(t, req)
			t.Logf("%d %s", status, strings.TrimSpace(body))
			g.refusedUnseen(t, before, status, body)
			assert.Contains(t, body, `"code":"invalid_http_request"`, "the OpenAI error shape")
			assert.False(t, second, "a smuggled request was answered")
		})
	}
	// RFC 9112 lets a server either refuse an obs-fold or a bare CR or
	// replace it with a space; Envoy unfolds the fold and drops the CR: the backend gets one
	// well-formed line: nothing for it to read differently.
	for name, req := range map[string]string{
		"obs-fold continuation line is unfolded": head + "X-Odd: a\r\n b\r\nContent-Length: " + fmt.Sprint(len(chat)) + "\r\n\r\n" + chat,
		"bare CR in a header value is dropped":   head + "X-Odd: a\rb\r\nContent-Length: " + fmt.Sprint(len(chat)) + "\r\n\r\n" + chat,
	} {
		t.Run(name, func(t *testing.T) {
			before := g.fake.seen()
			status, body, second := g.raw(t, req)
			require.Equal(t, http.StatusOK, status, body)
			assert.False(t, second)
			paths, hs := g.fake.since(before)
			require.Equal(t, []string{"/v1/chat/completions"}, paths)
			v := hs[0].Get("x-odd")
			assert.NotContains(t, v, "\r")
			assert.NotContains(t, v, "\n")
			assert.Contains(t, []string{"a b", "a  b", "ab"}, v, "one line, the CR and fold gone")
		})
	}
}

func TestHostileHeaders(t *testing.T) {
	g := startHostileGateway(t)
	body := chatBody("model-a", false, "hostile headers")
	do := func(t *testing.T, path string, hs [][2]string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+path, strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		for _, h := range hs {
			req.Header.Add(h[0], h[1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	full := [2]string{"authorization", "Bearer " + hostileKeyFull}
	many := [][2]string{full}
	for i := range 120 {
		many = append(many, [2]string{fmt.Sprintf("x-many-%d", i), "v"})
	}
	for name, tc := range map[string]struct {
		hs     [][2]string
		status int
	}{
		"one 80 KiB header":                {[][2]string{full, {"x-big", strings.Repeat("a", 80<<10)}}, http.StatusRequestHeaderFieldsTooLarge},
		"120 headers":                      {many, http.StatusRequestHeaderFieldsTooLarge},
		"two authorization headers":        {[][2]string{full, {"authorization", "Bearer " + hostileKeyEmbed}}, http.StatusUnauthorized},
		"authorization and x-api-key":      {[][2]string{{"authorization", "Bearer sk-e2e-hostile-wrong"}, {"x-api-key", hostileKeyFull}}, http.StatusUnauthorized},
		"huge bearer token (40 KiB)":       {[][2]string{{"authorization", "Bearer " + strings.Repeat("A", 40<<10)}}, http.StatusUnauthorized},
		"underscore twin of authorization": {[][2]string{{"x_api_key", hostileKeyFull}}, http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			before := g.fake.seen()
			status, b := do(t, "/v1/chat/completions", tc.hs)
			t.Logf("%d %.200s", status, b)
			assert.Equal(t, tc.status, status, "body: %.300s", b)
			if status == http.StatusRequestHeaderFieldsTooLarge {
				assert.Contains(t, b, `"code":"request_headers_too_large"`, "the OpenAI error shape")
			}
			g.refusedUnseen(t, before, status, b)
		})
	}

	t.Run("spoofed internal headers never reach the backend", func(t *testing.T) {
		spoof := [][2]string{full,
			{contract.BackendHeader, "spoofed"}, {contract.ModelHeader, "spoofed"}, {contract.PriorityHeader, "critical"},
			{"x-streamgate-tenant", "spoofed"}, {"x-streamgate-anything", "spoofed"}, {contract.DestinationEndpointKey, "10.0.0.1:1"},
			{"x-envoy-original-path", "/spoofed"}, {"x-envoy-internal", "true"}, {"x-envoy-upstream-alt-stat-name", "spoofed"},
		}
		before := g.fake.seen()
		status, b := do(t, "/v1/chat/completions", spoof)
		require.Equal(t, http.StatusOK, status, b)
		_, hs := g.fake.since(before)
		require.Len(t, hs, 1)
		for k, vs := range hs[0] {
			for _, v := range vs {
				assert.NotContains(t, v, "spoofed", "%s reached the backend", k)
				assert.NotContains(t, v, "10.0.0.1", "%s reached the backend", k)
			}
		}
		assert.Empty(t, hs[0].Values(contract.PriorityHeader))
		assert.Equal(t, []string{"full"}, hs[0].Values("x-streamgate-tenant"))
	})

	// The router obeys x-envoy-retry-on and x-envoy-max-retries from a
	// request it takes for internal: a client could multiply its requests
	// to a failing backend, or shorten their timeouts.
	t.Run("client cannot ask Envoy for retries", func(t *testing.T) {
		before := g.fake.seen()
		status, b := do(t, "/v1/chat/completions", [][2]string{full, {"x-fakellm-fail", "500"},
			{"x-envoy-retry-on", "5xx,retriable-status-codes,reset"}, {"x-envoy-max-retries", "5"},
			{"x-envoy-retriable-status-codes", "500"}, {"x-envoy-upstream-rq-timeout-ms", "1"}})
		t.Logf("%d %.200s", status, b)
		paths, _ := g.fake.since(before)
		assert.Len(t, paths, 1, "the backend saw the request once, not once per client-asked retry")
	})
}

func TestHostilePaths(t *testing.T) {
	g := startHostileGateway(t)
	chat := string(chatBody("model-a", false, "hostile path"))
	// The embed tenant's own endpoint works: the control.
	req := "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
	emb := `{"model":"model-a","input":"hostile"}`
	before := g.fake.seen()
	status, body, _ := g.raw(t, fmt.Sprintf(req, "/v1/embeddings", hostileKeyEmbed, len(emb), emb))
	require.Equal(t, http.StatusOK, status, body)
	paths, _ := g.fake.since(before)
	require.Equal(t, []string{"/v1/embeddings"}, paths)

	for _, p := range []string{
		"/v1/embeddings/../chat/completions",
		"/v1/embeddings/%2e%2e/chat/completions",
		"/v1/embeddings/%2E%2E/chat/completions",
		"/v1/embeddings%2F..%2Fchat%2Fcompletions",
		"/v1/embeddings%2f..%2fchat%2fcompletions",
		"/v1/embeddings/..%2Fchat/completions",
		"/v1/chat%2Fcompletions",
		"/v1/%63hat/completions",
		"/v1/./chat/completions",
		"/v1//chat/completions",
		"//v1/chat/completions",
		"/V1/CHAT/COMPLETIONS",
		"/v1/Chat/Completions",
		"/v1/chat/completions.",
		"/v1/chat/completions/",
		"/v1/chat/completions;/v1/embeddings",
		"/v1/chat/completions?/v1/embeddings",
		"/v1/chat/completions#/v1/embeddings",
		"/v1/embeddings\\..\\chat/completions",
		"/v1/chat/completions%00",
		"/v1/embeddings/../../v1/chat/completions",
		"/./v1/chat/completions",
	} {
		t.Run(p, func(t *testing.T) {
			// The embed tenant never reaches chat, whatever the spelling.
			before := g.fake.seen()
			status, body, _ := g.raw(t, fmt.Sprintf(req, p, hostileKeyEmbed, len(chat), chat))
			t.Logf("embed: %d %.160s", status, strings.TrimSpace(body))
			g.refusedUnseen(t, before, status, body)
			// The full tenant may use chat: a path that reaches the backend
			// arrives there in its one canonical spelling.
			before = g.fake.seen()
			status, body, _ = g.raw(t, fmt.Sprintf(req, p, hostileKeyFull, len(chat), chat))
			t.Logf("full: %d %.160s", status, strings.TrimSpace(body))
			paths, _ := g.fake.since(before)
			for _, got := range paths {
				assert.Equal(t, "/v1/chat/completions", got, "backend path")
			}
			if status == http.StatusOK {
				assert.Len(t, paths, 1)
			} else {
				assert.True(t, status >= 400 && status < 500, "a clear refusal: %d", status)
				assert.Empty(t, paths)
			}
		})
	}
}

func TestHostileBodiesAndTokens(t *testing.T) {
	g := startHostileGateway(t)
	post := func(t *testing.T, auth, body string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		req.Header.Set("authorization", "Bearer "+auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "https://idp.hostile.test", "aud": "streamgate", "org": "full", "sub": "mallory",
			"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	other := authtest.NewIdP(t)
	other.AddKey(t, "k1", "RS256") // same kid, another key
	good := string(chatBody("model-a", false, "hostile body"))
	for name, tc := range map[string]struct {
		auth, body string
		status     int
		code       string
	}{
		"invalid UTF-8 in a string":    {hostileKeyFull, "{\"model\":\"model-a\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\xfeb\"}]}", 400, "invalid_request"},
		"invalid UTF-8 in the model":   {hostileKeyFull, "{\"model\":\"model-\xc3\",\"messages\":[]}", 400, "invalid_request"},
		"UTF-16 surrogate escape only": {hostileKeyFull, `{"model":"model-a\ud800","messages":[]}`, 404, "model_not_found"},
		"100,000 nested arrays":        {hostileKeyFull, `{"model":"model-a","messages":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, 400, "invalid_request"},
		"nested objects in a message":  {hostileKeyFull, `{"model":"model-a","messages":[{"role":"user","content":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat("}", 5000) + `}]}`, 400, "invalid_request"},
		"JWT alg none":                 {noneTokenFor(t, claims(nil)), good, 401, "invalid_api_key"},
		"JWT signed by another key":    {other.Sign(t, "k1", claims(nil)), good, 401, "invalid_api_key"},
		"JWT of an unknown kid":        {g.idpToken(t, "k9", claims(nil)), good, 401, "invalid_api_key"},
		"JWT expired":                  {g.idp.Sign(t, "k1", claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), good, 401, "invalid_api_key"},
		"JWT not yet valid":            {g.idp.Sign(t, "k1", claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), good, 401, "invalid_api_key"},
		"JWT huge (13 KiB of claims)":  {g.idp.Sign(t, "k1", claims(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("p", 13<<10) })), good, 401, "invalid_api_key"},
	} {
		t.Run(name, func(t *testing.T) {
			noteSecret("hostile token", tc.auth)
			before := g.fake.seen()
			status, b := post(t, tc.auth, tc.body)
			t.Logf("%d %.200s", status, b)
			assert.Equal(t, tc.status, status, "body: %.300s", b)
			assert.Contains(t, b, `"code":"`+tc.code+`"`)
			g.refusedUnseen(t, before, status, b)
		})
	}
	// The control: a good token passes.
	status, b := post(t, g.idp.Sign(t, "k1", claims(nil)), good)
	require.Equal(t, http.StatusOK, status, b)
}

// idpToken signs with the gateway's issuer under kid, a key the JWKS does
// not have (AddKey makes it, RemoveKey takes it off the JWKS again).
func (g *hostileGateway) idpToken(t *testing.T, kid string, c jwt.MapClaims) string {
	g.idp.AddKey(t, kid, "RS256")
	s := g.idp.Sign(t, kid, c)
	g.idp.RemoveKey(kid)
	return s
}

func noneTokenFor(t *testing.T, c jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	return s
}

// TestHostileHTTP2: HTTP/2 requests that RFC 9113 calls malformed (§8.2,
// §8.1.1) get a stream reset or a 4xx, and the backend never sees them.
func TestHostileHTTP2(t *testing.T) {
	g := startHostileGateway(t)
	chat := []byte(`{"model":"model-a","messages":[{"role":"user","content":"h2"}]}`)
	base := [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", g.addr}, {":path", "/v1/chat/completions"},
		{"content-type", "application/json"}, {"authorization", "Bearer " + hostileKeyFull}}
	with := func(extra ...[2]string) [][2]string { return append(append([][2]string(nil), base...), extra...) }
	// The control: the same request, well formed, is served.
	before := g.fake.seen()
	c := dialH2C(t, g.addr)
	c.serverMaxStreams(t)
	ev := c.wait(t, h2Request(t, c, with([2]string{"content-length", fmt.Sprint(len(chat))}), chat), 10*time.Second)
	require.Equal(t, http.StatusOK, ev.status)
	paths, _ := g.fake.since(before)
	require.Equal(t, []string{"/v1/chat/completions"}, paths)
	for name, tc := range map[string]struct {
		fields [][2]string
		body   []byte
	}{
		"transfer-encoding":             {with([2]string{"transfer-encoding", "chunked"}), chat},
		"connection header":             {with([2]string{"connection", "close"}), chat},
		"upper-case header name":        {with([2]string{"X-Upper", "1"}), chat},
		"CR LF in a header value":       {with([2]string{"x-odd", "a\r\nx-injected: 1"}), chat},
		"NUL in a header value":         {with([2]string{"x-odd", "a\x00b"}), chat},
		"content-length below the body": {with([2]string{"content-length", "5"}), chat},
		"content-length above the body": {with([2]string{"content-length", "500"}), chat},
		"pseudo-header after a regular": {append(with(), [2]string{":path", "/v1/embeddings"}), chat},
		"two :path pseudo-headers":      {append([][2]string{{":path", "/v1/embeddings"}}, base...), chat},
	} {
		t.Run(name, func(t *testing.T) {
			before := g.fake.seen()
			c := dialH2C(t, g.addr)
			c.serverMaxStreams(t)
			id := h2Request(t, c, tc.fields, tc.body)
			var ev h2event
			var answered, closed bool
			require.Eventually(t, func() bool {
				ev, answered = c.event(id)
				c.mu.Lock()
				closed = c.readErr != nil || c.goAway != 0
				c.mu.Unlock()
				return answered || closed
			}, 10*time.Second, 10*time.Millisecond, "no answer")
			t.Logf("stream %d: %+v, connection closed %v (GOAWAY %v)", id, ev, closed, c.goAway)
			assert.True(t, !answered || ev.reset || ev.status >= 400 && ev.status < 500, "want a reset, a 4xx or the connection closed, got %+v", ev)
			paths, _ := g.fake.since(before)
			assert.Empty(t, paths, "the backend saw the request")
		})
	}
}

// h2Request sends one request with exactly fields (in order) and body.
func h2Request(t *testing.T, c *h2c, fields [][2]string, body []byte) uint32 {
	t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	id := c.next
	c.next += 2
	c.hbuf.Reset()
	for _, kv := range fields {
		require.NoError(t, c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]}))
	}
	require.NoError(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}))
	require.NoError(t, c.fr.WriteData(id, true, body))
	return id
}

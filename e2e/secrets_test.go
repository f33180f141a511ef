package e2e

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The secret scan (issue 21 item 6): every log line the e2e run produces
// (Streamgate, Envoy and the fakes write into syncBuffers, which register
// themselves on their first write) is searched, once the package's tests
// have run, for the secrets the tests handled: the strings noted with
// noteSecret and notePrompt (keys minted at run time, JWTs, prompts) and
// anything matching secretPatterns (every test key and upstream credential
// follows one of them, so a new test's keys are covered without a note).
// TestMain fails the run on any hit.

// secretPatterns match the test suite's credentials by shape.
var secretPatterns = []*regexp.Regexp{
	// Client API keys: sk-e2e-…, sk-obs-…, sk-leak (a query value).
	regexp.MustCompile(`sk-(e2e|obs|demo|leak)[A-Za-z0-9-]*`),
	// Upstream credentials the gateway injects.
	regexp.MustCompile(`[a-z]+-upstream-secret-[0-9a-f]+|upstream-[a-z]-secret-[0-9a-f]+|upstream-secret|entra-secret`),
	// A JWT: base64url JSON header and claims.
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.`),
	// A PEM private key (listener TLS, Vertex service accounts).
	regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`),
}

// secretScan holds what the scan reads.
var secretScan struct {
	mu      sync.Mutex
	logs    []*syncBuffer
	secrets map[string]string // secret → what it is
}

// registerLogs adds a log buffer to the scan (syncBuffer does it itself on
// its first write; callers need not).
func registerLogs(b *syncBuffer) {
	secretScan.mu.Lock()
	defer secretScan.mu.Unlock()
	for _, l := range secretScan.logs {
		if l == b {
			return
		}
	}
	secretScan.logs = append(secretScan.logs, b)
}

// noteSecret adds s (a key, token or credential made at run time) to the
// scan and returns it.
func noteSecret(what, s string) string {
	if len(s) < 8 {
		return s // too short to tell from ordinary text
	}
	secretScan.mu.Lock()
	defer secretScan.mu.Unlock()
	if secretScan.secrets == nil {
		secretScan.secrets = map[string]string{}
	}
	secretScan.secrets[s] = what
	return s
}

// notePrompt adds a prompt the tests send to the scan: its first 64
// bytes, when they can be told from ordinary log text: 12 bytes or more,
// of at least 4 different values (a run of one letter, as the size tests
// send, also fills other tests' paths and names).
func notePrompt(p string) {
	if len(p) < 12 {
		return
	}
	if len(p) > 64 {
		p = p[:64]
	}
	var seen [256]bool
	distinct := 0
	for i := 0; i < len(p); i++ {
		if !seen[p[i]] {
			seen[p[i]] = true
			distinct++
		}
	}
	if distinct < 4 {
		return
	}
	noteSecret("prompt", p)
}

// secretLeaks returns one line per secret found in a registered log.
func secretLeaks() []string {
	secretScan.mu.Lock()
	logs := append([]*syncBuffer(nil), secretScan.logs...)
	secrets := make(map[string]string, len(secretScan.secrets))
	for s, what := range secretScan.secrets {
		secrets[s] = what
	}
	secretScan.mu.Unlock()
	return findSecrets(logs, secrets)
}

// findSecrets returns one line per secret (or secretPatterns match) found
// in logs.
func findSecrets(logs []*syncBuffer, secrets map[string]string) []string {
	found := map[string]bool{}
	for i, b := range logs {
		for n, line := range strings.Split(b.String(), "\n") {
			for s, what := range secrets {
				if strings.Contains(line, s) {
					found[fmt.Sprintf("log %d line %d: a %s (%.12s…): %.300s", i, n+1, what, s, line)] = true
				}
			}
			for _, re := range secretPatterns {
				if m := re.FindString(line); m != "" {
					found[fmt.Sprintf("log %d line %d: matches %s (%.12s…): %.300s", i, n+1, re, m, line)] = true
				}
			}
		}
	}
	out := make([]string, 0, len(found))
	for f := range found {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// scannedLogs reports how many buffers and bytes the scan read.
func scannedLogs() (buffers, bytes int) {
	secretScan.mu.Lock()
	defer secretScan.mu.Unlock()
	for _, b := range secretScan.logs {
		bytes += len(b.String())
	}
	return len(secretScan.logs), bytes
}

// TestSecretScanFindsLeaks: the scan reports a noted secret, a key, an
// upstream credential and a JWT by shape, and passes ordinary log lines.
func TestSecretScanFindsLeaks(t *testing.T) {
	var b syncBuffer // written directly: not registered with the run's scan
	b.buf.WriteString(`{"msg":"request rejected","reason":"invalid key","status":401}` + "\n" +
		`{"msg":"oops","prompt":"the quick brown fox jumps"}` + "\n" +
		`authorization: Bearer sk-e2e-acme-5f1c0b9e7d` + "\n" +
		`x-api-key: kserve-upstream-secret-1a3c5e7b9d` + "\n" +
		`token=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.c2ln` + "\n")
	leaks := findSecrets([]*syncBuffer{&b}, map[string]string{"the quick brown fox": "prompt"})
	require.Len(t, leaks, 4, "%s", strings.Join(leaks, "\n"))
	for i, want := range []string{"line 2: a prompt", "line 3: matches sk-", "line 4: matches", "line 5: matches eyJ"} {
		assert.Contains(t, leaks[i], want)
	}
}

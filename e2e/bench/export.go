package bench

import (
	"bufio"
	"context"
)

// Helpers other harnesses (e2e/pickbench) share with this one.

// ReadEvents reads an OpenAI server-sent event stream from r, calling
// onEvent with every data event's payload and whether it carries output
// text; it reports whether the stream ended with "data: [DONE]". The
// payload is valid only during the call.
func ReadEvents(r *bufio.Reader, onEvent func(payload []byte, token bool)) (bool, error) {
	return readEventPayloads(r, onEvent)
}

// FreePorts returns n distinct free loopback addresses (127.0.0.1:port).
// Another process may take one before the caller binds it.
func FreePorts(n int) ([]string, error) { return freePorts(n) }

// MergeMarked puts generated between the lines begin and end of page, or
// returns generated alone between them when page lacks them. Text outside
// the markers is kept.
func MergeMarked(page, generated []byte, begin, end string) []byte {
	return mergeBetween(page, generated, begin, end)
}

// Machine describes the machine a run happened on (CPU, memory, kernel, Go,
// Envoy, load average at the start).
func DescribeMachine(ctx context.Context, envoyBin string) Machine {
	return describeMachine(ctx, envoyBin)
}

// LoadAvg is /proc/loadavg's three averages, or "" when unreadable.
func LoadAvg() string { return loadAvg() }

package config

import (
	"fmt"
	"time"
)

// FirstByteTimeout is the first-byte deadline of requests routed to
// backend (as a chain's first backend, for the whole chain): its own
// first_byte_timeout, else gateway.first_byte_timeout; 0 for none.
func (c *Config) FirstByteTimeout(backend string) time.Duration {
	if b := c.Backend(backend); b != nil && b.FirstByteTimeout > 0 {
		return b.FirstByteTimeout
	}
	return c.Gateway.FirstByteTimeout
}

// validateDeadlines checks the first-byte deadlines: positive, and shorter
// than stream_idle_timeout, which would end the wait first.
func (v *validator) validateDeadlines(c *Config) {
	check := func(path, what string, d time.Duration) {
		switch {
		case d < 0:
			v.at(path, "%s must be positive", what)
		case d > 0 && d >= c.Gateway.StreamIdleTimeout:
			v.at(path, "%s (%v) must be shorter than gateway.stream_idle_timeout (%v), which would end the wait first", what, d, c.Gateway.StreamIdleTimeout)
		}
	}
	check("$.gateway.first_byte_timeout", "first_byte_timeout", c.Gateway.FirstByteTimeout)
	for i, b := range c.Backends {
		check(fmt.Sprintf("$.backends[%d].first_byte_timeout", i), fmt.Sprintf("backend %q: first_byte_timeout", b.Name), b.FirstByteTimeout)
	}
}

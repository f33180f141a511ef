package bridge

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/streamgate/streamgate/config"
)

func TestBackoff(t *testing.T) {
	b := &Bridge{cfg: &config.Bridge{Backoff: time.Second, MaxBackoff: 10 * time.Second}}
	assert.Equal(t, time.Second, b.backoff(1, 0))
	assert.Equal(t, 2*time.Second, b.backoff(2, 0))
	assert.Equal(t, 8*time.Second, b.backoff(4, 0))
	assert.Equal(t, 10*time.Second, b.backoff(9, 0), "capped")
	assert.Equal(t, 30*time.Second, b.backoff(1, 30*time.Second), "a longer Retry-After wins")
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	assert.Equal(t, 3*time.Second, retryAfter("3", now))
	assert.Equal(t, time.Hour, retryAfter("999999", now), "bounded")
	assert.Equal(t, 30*time.Second, retryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	assert.Zero(t, retryAfter("", now))
	assert.Zero(t, retryAfter("-1", now))
	assert.Zero(t, retryAfter("soon", now))
	assert.Zero(t, retryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now), "a past date")
}

func TestUsageOf(t *testing.T) {
	assert.JSONEq(t, `{"total_tokens":3}`, string(usageOf([]byte(`{"id":"x","usage":{"total_tokens":3}}`))))
	assert.JSONEq(t, `{"input_tokens":1}`, string(usageOf([]byte(`{"type":"response.completed","response":{"usage":{"input_tokens":1}}}`))))
	assert.Nil(t, usageOf([]byte(`{"usage":null}`)))
	assert.Nil(t, usageOf([]byte(`{"choices":[]}`)))
	assert.Nil(t, usageOf([]byte(`not json`)))
}

func TestGatewayCode(t *testing.T) {
	assert.Equal(t, "model_not_found", gatewayCode([]byte(`{"error":{"code":"model_not_found","message":"x"}}`), "def"))
	assert.Equal(t, "def", gatewayCode([]byte(`{"error":{"code":null}}`), "def"))
	assert.Equal(t, "def", gatewayCode([]byte(`<html>`), "def"))
}

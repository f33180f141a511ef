package credential

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/examples/fakeazure"
)

// TestEntraTokenCachedAndRefreshedEarly: a token is fetched once and
// reused while it has more than refreshEarly left; one closer to expiry is
// replaced before use.
func TestEntraTokenCachedAndRefreshedEarly(t *testing.T) {
	for name, tc := range map[string]struct {
		ttl  time.Duration
		want int
	}{"long-lived": {time.Hour, 1}, "expiring soon": {2 * time.Minute, 3}} {
		t.Run(name, func(t *testing.T) {
			fake := fakeazure.New(fakeazure.Options{ClientID: "app", ClientSecret: "shh", TokenTTL: tc.ttl})
			ts := httptest.NewServer(fake)
			defer ts.Close()
			t.Setenv("SG_TEST_ENTRA_SECRET", "shh")
			o, err := NewEntra(context.Background(), &config.Entra{ClientID: "app", TokenURL: ts.URL + "/t/oauth2/v2.0/token", ClientSecretEnv: "SG_TEST_ENTRA_SECRET"})
			require.NoError(t, err)
			for range 3 {
				h, err := o.Sign(context.Background(), "/openai/deployments/d/chat/completions", nil)
				require.NoError(t, err)
				require.Len(t, h, 1)
				assert.Equal(t, "authorization", h[0][0])
				assert.Contains(t, h[0][1], "Bearer fake-entra-")
			}
			assert.Equal(t, tc.want, fake.TokensIssued())
		})
	}
}

func TestEntraWrongSecret(t *testing.T) {
	fake := fakeazure.New(fakeazure.Options{ClientID: "app", ClientSecret: "shh"})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	t.Setenv("SG_TEST_ENTRA_SECRET", "wrong")
	o, err := NewEntra(context.Background(), &config.Entra{ClientID: "app", TokenURL: ts.URL + "/t/oauth2/v2.0/token", ClientSecretEnv: "SG_TEST_ENTRA_SECRET"})
	require.NoError(t, err)
	_, err = o.Sign(context.Background(), "/", nil)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.NotContains(t, err.Error(), "wrong", "the secret never appears in errors")
}

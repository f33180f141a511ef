package credential

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/examples/fakegemini"
)

// TestVertexServiceAccountToken: a service account key file gets a token
// from its token_uri (the fake verifies the signed assertion), reused
// across requests; a key the endpoint does not know gets none.
func TestVertexServiceAccountToken(t *testing.T) {
	const email = "gw@fake-project.iam.gserviceaccount.com"
	fake := fakegemini.New(fakegemini.Options{ClientEmail: email})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	fake.SetTokenURL(ts.URL + "/token")
	key, pub, err := fakegemini.ServiceAccountKey(email, ts.URL+"/token")
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(file, key, 0o600))

	// A key pair the endpoint does not trust: no token.
	o, err := NewVertex(context.Background(), &config.Vertex{Project: "p", Location: "l", CredentialsFile: file})
	require.NoError(t, err)
	_, err = o.Sign(context.Background(), "/v1/projects/p/locations/l/publishers/google/models/m:generateContent", nil)
	require.ErrorIs(t, err, ErrUnavailable)

	fake = fakegemini.New(fakegemini.Options{ClientEmail: email, PublicKey: pub, TokenURL: ts.URL + "/token"})
	ts.Config.Handler = fake
	o, err = NewVertex(context.Background(), &config.Vertex{Project: "p", Location: "l", CredentialsFile: file})
	require.NoError(t, err)
	for range 3 {
		h, err := o.Sign(context.Background(), "/v1/projects/p/locations/l/publishers/google/models/m:generateContent", nil)
		require.NoError(t, err)
		require.Len(t, h, 1)
		assert.Equal(t, "authorization", h[0][0])
		assert.Contains(t, h[0][1], "Bearer ya29.fake-")
	}
	assert.Equal(t, 1, fake.TokensIssued())
}

func TestVertexBadCredentialsFile(t *testing.T) {
	_, err := NewVertex(context.Background(), &config.Vertex{Project: "p", Location: "l", CredentialsFile: filepath.Join(t.TempDir(), "missing.json")})
	require.ErrorContains(t, err, "cannot read the Google credentials file")
	file := filepath.Join(t.TempDir(), "user.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`), 0o600))
	_, err = NewVertex(context.Background(), &config.Vertex{Project: "p", Location: "l", CredentialsFile: file})
	require.ErrorContains(t, err, "cannot load Google credentials")
}

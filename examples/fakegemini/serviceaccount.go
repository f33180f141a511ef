package fakegemini

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
)

// ServiceAccountKey makes a service account key file (JSON, as the Google
// Cloud console downloads it) for email whose token_uri is tokenURL, with
// a fresh RSA key pair; it returns the file and the public key the token
// endpoint verifies assertions with.
func ServiceAccountKey(email, tokenURL string) ([]byte, *rsa.PublicKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	b, err := json.MarshalIndent(map[string]string{
		"type": "service_account", "project_id": "fake-project", "private_key_id": "fake-key-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "100000000000000000001",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": tokenURL,
	}, "", "  ")
	return b, &key.PublicKey, err
}

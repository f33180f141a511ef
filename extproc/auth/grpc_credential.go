package auth

import (
	"encoding/base64"
	"strings"
)

// GRPCAuthorization reads the Authorization metadata of a gRPC service call
// as ParseCredential expects it. Some official gRPC clients send the key
// without a scheme, base64-encoded: pymilvus sends base64(token) for
// MilvusClient(token=KEY). One such value (no scheme, standard base64,
// decoding to a b64token) becomes "Bearer " + the decoded key; any other
// value, "Bearer KEY" included, is returned as it came, so
// ParseCredential refuses what it refuses today.
func GRPCAuthorization(values []string) []string {
	if len(values) != 1 {
		return values
	}
	v := strings.Trim(values[0], " \t")
	// Go's base64 decoder skips CR and LF even in Strict mode: a value
	// holding them is no plain base64 token (found by make fuzz-campaign).
	if v == "" || strings.ContainsAny(v, " \t\r\n") || len(v) > MaxCredentialBytes {
		return values
	}
	key, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil || !b64token(string(key)) {
		return values
	}
	return []string{"Bearer " + string(key)}
}

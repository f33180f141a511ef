package fakebedrock

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// maxSkew is how far a request's x-amz-date may be from the server's
// clock, as AWS allows.
const maxSkew = 5 * time.Minute

// authError is a refused signature: the exception name and message AWS
// answers with, always with status 403.
type authError struct{ typ, msg string }

func (e *authError) Error() string { return e.typ + ": " + e.msg }

// sigV4Auth is a parsed Authorization header.
type sigV4Auth struct {
	accessKey, date, region, service string
	signedHeaders                    []string
}

func parseAuthorization(h string) (sigV4Auth, error) {
	var a sigV4Auth
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return a, &authError{"IncompleteSignatureException", "Authorization header requires the AWS4-HMAC-SHA256 algorithm."}
	}
	var cred, signed string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		}
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || signed == "" {
		return a, &authError{"IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters."}
	}
	a.accessKey, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(signed, ";")
	return a, nil
}

// verify checks r's SigV4 signature as AWS does: it rebuilds the request
// from the headers the signature names and signs it again with the AWS
// SDK's own signer, then compares. body is r's body, already read.
func (s *Server) verify(r *http.Request, body []byte) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return &authError{"MissingAuthenticationTokenException", "Missing Authentication Token"}
	}
	if len(r.Header.Values("Authorization")) != 1 {
		return &authError{"IncompleteSignatureException", "The request carries more than one Authorization header."}
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return err
	}
	if err := unsignedAmzHeaders(r, a.signedHeaders); err != nil {
		return err
	}
	secret, ok := s.opts.Keys[a.accessKey]
	if !ok {
		return &authError{"UnrecognizedClientException", "The security token included in the request is invalid."}
	}
	if a.region != s.opts.Region || a.service != "bedrock" {
		return &authError{"InvalidSignatureException", fmt.Sprintf("Credential should be scoped to a valid region and service (%s, bedrock).", s.opts.Region)}
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || when.Format("20060102") != a.date {
		return &authError{"IncompleteSignatureException", "Date must be in ISO-8601 'basic format' and match the credential scope."}
	}
	if d := s.now().Sub(when); d > maxSkew || d < -maxSkew {
		return &authError{"InvalidSignatureException", "Signature expired: the request time is too far from the server time."}
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != "" && got != hash {
		return &authError{"InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	creds := aws.Credentials{AccessKeyID: a.accessKey, SecretAccessKey: secret}
	if tok := r.Header.Get("X-Amz-Security-Token"); tok != "" {
		if s.opts.SessionToken == "" || tok != s.opts.SessionToken {
			return &authError{"UnrecognizedClientException", "The security token included in the request is invalid."}
		}
		creds.SessionToken = tok
	}
	again := &http.Request{
		Method: r.Method, Host: r.Host, Header: http.Header{},
		URL: &url.URL{Scheme: "https", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
	}
	for _, name := range a.signedHeaders {
		switch name {
		case "host":
		case "content-length":
			again.ContentLength = r.ContentLength
		default:
			again.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
		}
	}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, again, hash, "bedrock", a.region, when); err != nil {
		return fmt.Errorf("cannot sign the request again: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(again.Header.Get("Authorization")), []byte(h)) != 1 {
		return &authError{"InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	}
	return nil
}

// unsignedAmzHeaders refuses a request carrying an x-amz-* header its
// signature does not cover, as AWS does: such a header (a client's
// x-amz-security-token, say) was added by someone other than the signer.
func unsignedAmzHeaders(r *http.Request, signed []string) error {
	var unsigned []string
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-amz-") && !slices.Contains(signed, lower) {
			unsigned = append(unsigned, lower)
		}
	}
	if len(unsigned) == 0 {
		return nil
	}
	slices.Sort(unsigned)
	return &authError{"InvalidSignatureException", "There were headers present in the request which were not signed: " + strings.Join(unsigned, ", ")}
}

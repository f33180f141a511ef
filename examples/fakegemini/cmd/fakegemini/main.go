// Command fakegemini runs Streamgate's fake Google Gemini backend with its
// fake token endpoint (package fakegemini). The Gemini API key comes from
// FAKEGEMINI_API_KEY (unset: every key is refused). With -key-file it
// writes a new service account key file whose token_uri is this fake's
// /token, and accepts that account's assertions: point a vertex backend's
// credentials_file at it.
//
// It prints "fakegemini listening on <addr>" and serves until SIGINT or
// SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamgate/streamgate/examples/fakegemini"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18097", "address to listen on")
	project := flag.String("project", "fake-project", "Vertex AI project served")
	location := flag.String("location", "us-central1", "Vertex AI location served")
	keyFile := flag.String("key-file", "", "write a service account key file here and accept its tokens")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail("cannot listen:", err)
	}
	opts := fakegemini.Options{APIKey: os.Getenv("FAKEGEMINI_API_KEY"), Project: *project, Location: *location}
	if *keyFile != "" {
		opts.ClientEmail = "streamgate@" + *project + ".iam.gserviceaccount.com"
		opts.TokenURL = "http://" + ln.Addr().String() + "/token"
		key, pub, err := fakegemini.ServiceAccountKey(opts.ClientEmail, opts.TokenURL)
		if err != nil {
			fail("cannot make a key:", err)
		}
		if err := os.WriteFile(*keyFile, key, 0o600); err != nil {
			fail("cannot write the key file:", err)
		}
		opts.PublicKey = pub
	}
	srv := &http.Server{Handler: fakegemini.New(opts)}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	fmt.Printf("fakegemini listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fail(err)
	}
}

func fail(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fakegemini:"}, args...)...)
	os.Exit(1)
}

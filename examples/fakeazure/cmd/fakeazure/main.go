// Command fakeazure runs Streamgate's fake Azure OpenAI resource with its
// fake Entra ID token endpoint (package fakeazure). The api-key comes from
// FAKEAZURE_API_KEY, the Entra application's secret from
// FAKEAZURE_CLIENT_SECRET (either may be unset to refuse that way in).
//
// It prints "fakeazure listening on <addr>" and serves until SIGINT or
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
	"strings"
	"syscall"

	"github.com/streamgate/streamgate/examples/fakeazure"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18096", "address to listen on")
	versions := flag.String("api-versions", "2024-10-21", "comma-separated api-version values accepted")
	deployments := flag.String("deployments", "", "comma-separated deployments served (default: any)")
	clientID := flag.String("client-id", "fakeazure-app", "Entra application (client) id allowed to get tokens")
	flag.Parse()
	opts := fakeazure.Options{APIKey: os.Getenv("FAKEAZURE_API_KEY"), APIVersions: strings.Split(*versions, ","),
		ClientID: *clientID, ClientSecret: os.Getenv("FAKEAZURE_CLIENT_SECRET")}
	if opts.ClientSecret == "" {
		opts.ClientID = ""
	}
	if *deployments != "" {
		opts.Deployments = strings.Split(*deployments, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeazure: cannot listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: fakeazure.New(opts)}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	fmt.Printf("fakeazure listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "fakeazure:", err)
		os.Exit(1)
	}
}

// Command fakebedrock runs Streamgate's fake AWS Bedrock Runtime (package
// fakebedrock): Converse and ConverseStream, SigV4 checked with the AWS
// SDK's signer. The accepted key is -access-key with the secret from the
// FAKEBEDROCK_SECRET_ACCESS_KEY environment variable.
//
// It prints "fakebedrock listening on <addr>" and serves until SIGINT or
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

	"github.com/streamgate/streamgate/examples/fakebedrock"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18095", "address to listen on")
	region := flag.String("region", "us-east-1", "region requests must be signed for")
	host := flag.String("host", "", "Host requests must be signed for (default bedrock-runtime.REGION.amazonaws.com)")
	key := flag.String("access-key", "AKIDFAKEBEDROCK", "access key id accepted")
	models := flag.String("models", "", "comma-separated model ids served (default: any)")
	flag.Parse()
	secret := os.Getenv("FAKEBEDROCK_SECRET_ACCESS_KEY")
	if secret == "" {
		fmt.Fprintln(os.Stderr, "fakebedrock: set FAKEBEDROCK_SECRET_ACCESS_KEY")
		os.Exit(2)
	}
	opts := fakebedrock.Options{Region: *region, Host: *host, Keys: map[string]string{*key: secret}}
	if *models != "" {
		opts.Models = strings.Split(*models, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *listen, fakebedrock.New(opts), "fakebedrock"); err != nil {
		fmt.Fprintln(os.Stderr, "fakebedrock:", err)
		os.Exit(1)
	}
}

// serve runs h on addr until ctx ends.
func serve(ctx context.Context, addr string, h http.Handler, name string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	fmt.Printf("%s listening on %s\n", name, ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

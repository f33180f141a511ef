// Command fakellm runs Streamgate's fake OpenAI-compatible model server, the
// backend of the demo and of the end-to-end tests.
//
// It prints "fakellm <name> listening on <addr>" once it accepts connections
// (with the real port when -listen uses port 0) and serves until SIGINT or
// SIGTERM, then shuts down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// shutdownTimeout bounds the graceful shutdown; streams still open after it
// are cut.
const shutdownTimeout = 10 * time.Second

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "address to listen on")
	name := flag.String("name", "backend-a", "backend name, reported in the x-fakellm-backend header")
	ttft := flag.Duration("ttft", 0, "delay before the first token")
	itl := flag.Duration("itl", 0, "delay between tokens")
	tokens := flag.Int("tokens", 16, "default number of output tokens")
	sim := addSimFlags(flag.CommandLine)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := fakellm.Options{Name: *name, TTFT: *ttft, ITL: *itl, Tokens: *tokens}
	h, err := sim.handler(*name, *tokens)
	if err == nil && h == nil {
		err = run(ctx, *listen, opts, os.Stdout)
	} else if err == nil {
		err = serve(ctx, *listen, *name, h, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakellm:", err)
		os.Exit(1)
	}
}

// run serves a fakellm.Server built from opts on addr until ctx ends, then
// shuts it down gracefully. It announces the listening address on out.
func run(ctx context.Context, addr string, opts fakellm.Options, out io.Writer) error {
	return serve(ctx, addr, opts.Name, fakellm.New(opts), out)
}

// serve serves h on addr until ctx ends, then shuts it down gracefully. It
// announces "fakellm <name> listening on <addr>" on out.
func serve(ctx context.Context, addr, name string, h http.Handler, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(out, "fakellm %s listening on %s\n", name, ln.Addr())

	select {
	case err := <-serveErr:
		return fmt.Errorf("cannot serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("cannot shut down server: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("cannot serve: %w", err)
	}
	return nil
}

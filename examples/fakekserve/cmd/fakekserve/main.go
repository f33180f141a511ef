// Command fakekserve runs Streamgate's fake KServe v2 gRPC model server.
//
// It prints "fakekserve <name> listening on <addr>" once it accepts
// connections and serves until SIGINT or SIGTERM, then stops gracefully.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/streamgate/streamgate/examples/fakekserve"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "address to listen on")
	name := flag.String("name", "kserve-a", "backend name, reported in every response")
	models := flag.String("models", fakekserve.DefaultModel, "comma-separated model names served")
	responses := flag.Int("responses", 3, "responses per streamed request")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := fakekserve.Options{Name: *name, Models: strings.Split(*models, ","), Responses: *responses}
	if err := run(ctx, *listen, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fakekserve:", err)
		os.Exit(1)
	}
}

// run serves a fakekserve.Server and gRPC health on addr until ctx ends.
func run(ctx context.Context, addr string, opts fakekserve.Options, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	gs := grpc.NewServer()
	fakekserve.New(opts).Register(gs)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() {
		<-ctx.Done()
		gs.GracefulStop()
	}()
	fmt.Fprintf(out, "fakekserve %s listening on %s\n", opts.Name, ln.Addr())
	if err := gs.Serve(ln); err != nil {
		return fmt.Errorf("cannot serve: %w", err)
	}
	return nil
}

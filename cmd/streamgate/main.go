// Command streamgate is the Streamgate gateway: ext_proc and xDS servers for
// Envoy, and the config validator. See `streamgate help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, cli.ErrReported) {
			fmt.Fprintln(os.Stderr, "streamgate:", err)
		}
		os.Exit(1)
	}
}

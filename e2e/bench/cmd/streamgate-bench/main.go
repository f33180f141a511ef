// Command streamgate-bench runs Streamgate's benchmark harness (package
// e2e/bench): `make bench` in full, `make bench-smoke` briefly. Run it from
// the repository root after `make build envoy`; -h lists the settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamgate/streamgate/e2e/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "streamgate-bench:", err)
			os.Exit(1)
		}
	}
}

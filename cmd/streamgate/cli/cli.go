// Package cli is the streamgate command line: subcommands, flags and the
// wiring of config, ext_proc, xDS, metrics and Envoy. main only handles signals.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/streamgate/streamgate/config"
)

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

// ErrReported means the error was already printed for the user.
var ErrReported = errors.New("error already reported")

// errHelp ends a command after its flag help was printed; Main returns nil.
var errHelp = errors.New("help requested")

const usage = `streamgate: a streaming inference gateway for Envoy.

Usage:
  streamgate run      -c FILE   ext_proc + xDS in one process; starts Envoy when one is found
  streamgate extproc  -c FILE   only the ext_proc server (for an Envoy configured elsewhere)
  streamgate xds      -c FILE   only the xDS server (--drop-in: model clusters only)
  streamgate epp      -c FILE   endpoint picker for a Gateway API InferencePool (-backend NAME)
  streamgate bridge   -c FILE   consume inference requests from NATS JetStream / Kafka through the gateway
  streamgate validate -c FILE   check a config file, its credential env vars and files; prints OK or every problem
  streamgate usage    -c FILE   print spend budgets and usage from the usage API (-tenant, -series hour|day)
  streamgate hash-key           read an API key on stdin; print the hash to store in the config
  streamgate version            print the version

Run 'streamgate COMMAND -h' for a command's flags.
`

// Main runs the command in args (without the program name) until it
// finishes or ctx is cancelled.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrReported
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCmd(ctx, rest, stdout, stderr)
	case "extproc":
		return extprocCmd(ctx, rest, stdout, stderr)
	case "xds":
		return xdsCmd(ctx, rest, stdout, stderr)
	case "epp":
		return eppCmd(ctx, rest, stdout, stderr)
	case "bridge":
		return bridgeCmd(ctx, rest, stdout, stderr)
	case "validate":
		return validateCmd(rest, stdout, stderr)
	case "usage":
		return usageCmd(ctx, rest, stdout, stderr)
	case "hash-key":
		return hashKeyCmd(rest, os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "streamgate", Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "streamgate: unknown command %q\n\n%s", cmd, usage)
		return ErrReported
	}
}

// flags builds a FlagSet with the -c flag every config-reading command takes.
func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("c", "streamgate.yaml", "config file `path`")
	return fs, cfg
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return ErrReported
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "streamgate %s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		return ErrReported
	}
	return nil
}

func validateCmd(args []string, stdout, stderr io.Writer) error {
	fs, path := flags("validate", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		if ps := config.Problems(err); len(ps) > 0 {
			for _, p := range ps {
				fmt.Fprintln(stderr, p.Error())
			}
			fmt.Fprintf(stderr, "%d problem(s) found\n", len(ps))
			return ErrReported
		}
		return err
	}
	for _, w := range append(cfg.Warnings(), config.ExposureWarnings(cfg)...) {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	if ps := config.Problems(cfg.CheckSources()); len(ps) > 0 {
		for _, p := range ps {
			fmt.Fprintln(stderr, p.Error())
		}
		fmt.Fprintf(stderr, "%d problem(s) found\n", len(ps))
		return ErrReported
	}
	fmt.Fprintf(stdout, "OK: %s (%d backends, %d models)\n", *path, len(cfg.Backends), len(cfg.Models))
	fmt.Fprintln(stdout, "not checked (only a start can):")
	for _, c := range cfg.StartOnlyChecks() {
		fmt.Fprintf(stdout, "  - %s\n", c)
	}
	return nil
}

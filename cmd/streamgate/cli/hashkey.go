package cli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/streamgate/streamgate/extproc/auth"
)

// hashKeyCmd reads one API key from the first line of stdin and prints the
// "sha256:..." hash to store under auth.tenants[].api_keys[].hash. The key
// itself is never printed; reading it from stdin keeps it out of the shell
// history and the process list.
func hashKeyCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, "Usage: streamgate hash-key < keyfile\n")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(stdin, auth.MaxCredentialBytes+2).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read key from stdin: %w", err)
	}
	key := strings.TrimRight(line, "\r\n")
	if key == "" || strings.TrimSpace(key) != key || len(key) > auth.MaxCredentialBytes {
		fmt.Fprintln(stderr, "streamgate hash-key: the key must be one non-empty line without surrounding spaces (at most 16 KiB)")
		return ErrReported
	}
	if _, err := auth.ParseCredential([]string{"Bearer " + key}, nil); err != nil {
		fmt.Fprintln(stderr, "streamgate hash-key: the key holds characters clients cannot send in 'Authorization: Bearer' (allowed: letters, digits, - . _ ~ + / and trailing =)")
		return ErrReported
	}
	fmt.Fprintln(stdout, auth.HashKey(key))
	return nil
}

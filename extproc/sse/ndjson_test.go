package sse

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func linesOf(max int, chunks ...[]byte) ([]string, error) {
	d := &LineDecoder{MaxLineSize: max}
	var out []string
	drain := func() error {
		for {
			l, ok, err := d.Next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			out = append(out, string(l))
		}
	}
	for _, c := range chunks {
		d.Feed(c)
		if err := drain(); err != nil {
			return out, err
		}
	}
	d.Close()
	return out, drain()
}

func TestLineDecoder(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"lines":                  {"{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}},
		"CRLF":                   {"{}\r\n[]\r\n", []string{"{}", "[]"}},
		"blank lines skipped":    {"\n\n{}\n \n\r\n", []string{"{}"}},
		"last line unterminated": {"{}\n{\"done\":true}", []string{"{}", `{"done":true}`}},
	} {
		t.Run(name, func(t *testing.T) {
			for i := range len(tc.in) + 1 {
				got, err := linesOf(0, []byte(tc.in[:i]), []byte(tc.in[i:]))
				require.NoError(t, err)
				assert.Equal(t, tc.want, got, "split at %d", i)
			}
		})
	}
}

func TestLineDecoderTooLarge(t *testing.T) {
	_, err := linesOf(8, []byte(strings.Repeat("x", 9)+"\n"))
	assert.ErrorIs(t, err, ErrEventTooLarge)
	_, err = linesOf(8, []byte(strings.Repeat("x", 5)), []byte(strings.Repeat("x", 5)))
	assert.ErrorIs(t, err, ErrEventTooLarge)
	got, err := linesOf(8, []byte("12345678\r\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"12345678"}, got)
}

func FuzzLineDecoder(f *testing.F) {
	for _, s := range []string{"{}\n", "{}\r\n[]", "\n\n\r\n", `{"message":{"content":"x"},"done":false}` + "\n"} {
		f.Add([]byte(s), uint16(1), uint16(16))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut, limit uint16) {
		max := int(limit%256) + 1
		whole, errWhole := linesOf(max, in)
		at := int(cut) % (len(in) + 1)
		split, errSplit := linesOf(max, in[:at], in[at:])
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole err %v, split at %d err %v", errWhole, at, errSplit)
		}
		if errWhole != nil && !errors.Is(errWhole, ErrEventTooLarge) {
			t.Fatalf("unexpected error %v", errWhole)
		}
		assert.Equal(t, whole, split)
		for _, l := range whole {
			if len(l) > max {
				t.Fatalf("line of %d bytes passed a limit of %d", len(l), max)
			}
		}
	})
}

func BenchmarkLineDecoder(b *testing.B) {
	chunk := []byte(`{"model":"m","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"tok "},"done":false}` + "\n")
	d := &LineDecoder{}
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(chunk)
		if _, ok, err := d.Next(); !ok || err != nil {
			b.Fatal("no line")
		}
		if _, ok, _ := d.Next(); ok {
			b.Fatal("extra line")
		}
	}
}

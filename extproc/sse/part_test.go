package sse

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// partAll splits the chunks into lines with Part, joining each line's
// parts; a last line without its end counts, as Next's atEOF makes it.
func partAll(chunks ...string) []string {
	var s LineScanner
	var lines []string
	var cur strings.Builder
	open := false
	for _, c := range chunks {
		b := []byte(c)
		for len(b) > 0 {
			part, n, ended := s.Part(b)
			b = b[n:]
			cur.Write(part)
			open = open || len(part) > 0
			if ended {
				lines = append(lines, cur.String())
				cur.Reset()
				open = false
			}
		}
	}
	if open {
		lines = append(lines, cur.String())
	}
	return lines
}

func TestLineScannerPartAgreesWithNext(t *testing.T) {
	for _, chunks := range [][]string{
		{"a\nb\n"}, {"a\r\nb\r\n"}, {"a\rb\r"}, {"a\n\r\n\r\r\n\n"}, {"a\r", "\nb\r\n"}, {"a\r", "\rb\n"},
		{"a\r", "b\n"}, {"a\r", "", "\n", "b\n"}, {"a\nb"}, {"ab", "c\n"}, {"da", "ta: x", "yz\r", "\n\r", "\n"},
	} {
		assert.Equal(t, scanAll(chunks...), partAll(chunks...), "%q", chunks)
	}
}

// FuzzLineScannerPart: Part, fed any chunks, yields the lines Next
// yields.
func FuzzLineScannerPart(f *testing.F) {
	f.Add("data: a\r\n\r\ndata: b\rc\n", 3, 9)
	f.Add("x\r", 2, 2)
	f.Fuzz(func(t *testing.T, s string, cut, cut2 int) {
		if cut < 0 || cut > len(s) {
			cut = len(s) / 2
		}
		if cut2 < cut || cut2 > len(s) {
			cut2 = cut
		}
		chunks := []string{s[:cut], s[cut:cut2], s[cut2:]}
		want, got := scanAll(chunks...), partAll(chunks...)
		if strings.Join(want, "\x00") != strings.Join(got, "\x00") || len(want) != len(got) {
			t.Fatalf("Next %q, Part %q", want, got)
		}
	})
}

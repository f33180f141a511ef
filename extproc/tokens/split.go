package tokens

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Pre-tokenization: the o200k_base and cl100k_base encodings first split
// text into pieces with a regular expression, then byte-pair encode each
// piece on its own. The functions here find exactly the pieces that the
// tokenizer library's compiled split matcher finds, without a regexp
// engine: they walk the string once and test each rune's class in a table.
// Where the compiled matcher departs from the textbook reading of the
// pattern, these functions follow the matcher, and say so.

// Rune classes, as the split patterns test them.
const (
	clsU      uint8 = 1 << iota // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	clsL                        // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	clsLetter                   // \p{L}
	clsN                        // \p{N}
	clsSpace                    // \s: unicode.IsSpace
	clsPrefix                   // [^\r\n\p{L}\p{N}]
	clsPunct                    // [^\s\p{L}\p{N}]
)

// ASCII bitmaps of the two negated sets, as the compiled matcher holds
// them. Both leave out DEL (0x7F), so DEL matches no alternative and the
// matcher skips it: it yields no piece and no token.
const (
	prefixASCIILo, prefixASCIIHi = 0xfc00ffffffffdbff, 0x78000001f8000001
	punctASCIILo, punctASCIIHi   = 0xfc00fffeffffc1ff, 0x78000001f8000001
)

var (
	// runeClass holds the class of every rune in the first two planes
	// (the Basic Multilingual Plane; emoji, math letters, historic
	// scripts); classOnce fills it.
	runeClass [0x20000]uint8
	classOnce sync.Once
)

// initClasses fills runeClass. Everything that splits calls it first.
func initClasses() {
	classOnce.Do(func() {
		for r := range rune(len(runeClass)) {
			runeClass[r] = classify(r)
		}
	})
}

// classify returns r's class. Unicode general categories are disjoint, so
// one test per category decides every set; TestClassifyMatchesSets checks
// it against the sets' definitions for every rune.
func classify(r rune) uint8 {
	if r < utf8.RuneSelf {
		var c uint8
		switch {
		case 'a' <= r && r <= 'z':
			c = clsL | clsLetter
		case 'A' <= r && r <= 'Z':
			c = clsU | clsLetter
		case '0' <= r && r <= '9':
			c = clsN
		case unicode.IsSpace(r):
			c = clsSpace
		}
		if inASCIIBitmap(r, prefixASCIILo, prefixASCIIHi) {
			c |= clsPrefix
		}
		if inASCIIBitmap(r, punctASCIILo, punctASCIIHi) {
			c |= clsPunct
		}
		return c
	}
	switch {
	case unicode.IsLetter(r):
		switch {
		case unicode.IsLower(r):
			return clsL | clsLetter
		case unicode.IsUpper(r), unicode.IsTitle(r):
			return clsU | clsLetter
		default: // Lm, Lo
			return clsU | clsL | clsLetter
		}
	case unicode.IsMark(r):
		return clsU | clsL | clsPrefix | clsPunct
	case unicode.IsNumber(r):
		return clsN
	case unicode.IsSpace(r):
		return clsSpace | clsPrefix
	default:
		return clsPrefix | clsPunct
	}
}

func inASCIIBitmap(r rune, lo, hi uint64) bool {
	if r < 64 {
		return lo&(1<<uint(r)) != 0
	}
	return hi&(1<<uint(r-64)) != 0
}

// classAt returns the class and UTF-8 width of the rune at s[i]. An
// invalid byte is one rune of the class of U+FFFD. i must be < len(s).
func classAt(s string, i int) (uint8, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return runeClass[b], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r < rune(len(runeClass)) {
		return runeClass[r], w
	}
	return classify(r), w
}

// runOf returns the end of the run of runes from i whose class has any bit
// of want.
func runOf(s string, i int, want uint8) int {
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if runeClass[b]&want == 0 {
				break
			}
			i++
			continue
		}
		c, w := classAt(s, i)
		if c&want == 0 {
			break
		}
		i += w
	}
	return i
}

// pieceO200k returns the end of the o200k_base piece that starts at s[i],
// or -1 when no alternative of the pattern matches there (the caller then
// skips one rune). The pattern's alternatives, tried in order:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	\p{N}{1,3}
//	 ?[^\s\p{L}\p{N}]+[\r\n/]*
//	\s*[\r\n]+
//	\s+(?!\S)
//	\s+
func pieceO200k(s string, i int) int {
	c0, w0 := classAt(s, i)
	if c0&(clsPrefix|clsU|clsL) != 0 {
		if end := lettersO200k(s, i, c0, w0); end >= 0 {
			return end
		}
	}
	return pieceTail(s, i, c0, "\r\n/")
}

// lettersO200k matches the first two alternatives of o200k_base at s[i],
// whose rune has class c0 and width w0, returning the end or -1. The
// optional leading rune is tried first with, then without.
func lettersO200k(s string, i int, c0 uint8, w0 int) int {
	starts := [2]int{i, i}
	n := 1
	if c0&clsPrefix != 0 {
		starts[0], n = i+w0, 2
	}
	// Alternative 1: a greedy upper run, then at least one lower rune. When
	// the lower run after the whole upper run is empty, backtracking gives
	// back upper-run runes until one of them is also lower, so the match
	// ends after the upper run's last rune that is in the lower set.
	for _, p := range starts[:n] {
		q, lastLower := p, -1
		for q < len(s) {
			c, w := runeClass[s[q]], 1
			if s[q] >= utf8.RuneSelf {
				c, w = classAt(s, q)
			}
			if c&clsU == 0 {
				break
			}
			q += w
			if c&clsL != 0 {
				lastLower = q
			}
		}
		if end := runOf(s, q, clsL); end > q {
			return contraction(s, end)
		}
		if lastLower >= 0 {
			return contraction(s, lastLower)
		}
	}
	// Alternative 2: at least one upper rune, then any lower runes.
	for _, p := range starts[:n] {
		q := runOf(s, p, clsU)
		if q > p {
			return contraction(s, runOf(s, q, clsL))
		}
	}
	return -1
}

// pieceCl100k returns the end of the cl100k_base piece that starts at
// s[i], or -1 when no alternative matches there. The alternatives:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)
//	[^\r\n\p{L}\p{N}]?\p{L}+
//	\p{N}{1,3}
//	 ?[^\s\p{L}\p{N}]+[\r\n]*
//	\s*[\r\n]+
//	\s+(?!\S)
//	\s+
func pieceCl100k(s string, i int) int {
	if s[i] == '\'' {
		if end := contraction(s, i); end > i {
			return end
		}
	}
	c0, w0 := classAt(s, i)
	switch {
	case c0&clsPrefix != 0:
		// Without the leading rune the letter run would start at a rune
		// that is no letter, so only "with" can match.
		if end := runOf(s, i+w0, clsLetter); end > i+w0 {
			return end
		}
	case c0&clsLetter != 0:
		return runOf(s, i, clsLetter)
	}
	return pieceTail(s, i, c0, "\r\n")
}

// pieceTail matches the alternatives both encodings share after their
// letter alternatives: numbers, punctuation followed by any of the bytes in
// trail, and whitespace. c0 is the class of the rune at s[i].
func pieceTail(s string, i int, c0 uint8, trail string) int {
	if c0&clsN != 0 {
		end := i
		for range 3 {
			if end == len(s) {
				break
			}
			c, w := classAt(s, end)
			if c&clsN == 0 {
				break
			}
			end += w
		}
		return end
	}
	j := i
	if s[i] == ' ' {
		j++
	}
	if end := runOf(s, j, clsPunct); end > j {
		for end < len(s) && containsByte(trail, s[end]) {
			end++
		}
		return end
	}
	if c0&clsSpace != 0 {
		return spaces(s, i)
	}
	return -1
}

// spaces matches the whitespace alternatives at s[i], a whitespace rune.
func spaces(s string, i int) int {
	end, firstNL, last := i, -1, i
	for end < len(s) {
		c, w := classAt(s, end)
		if c&clsSpace == 0 {
			break
		}
		if firstNL < 0 && (s[end] == '\r' || s[end] == '\n') {
			firstNL = end
		}
		last = end
		end += w
	}
	if firstNL >= 0 {
		// \s*[\r\n]+: the compiled matcher backtracks the greedy \s* to the
		// FIRST line break of the run, not the last, so the piece ends after
		// the run's first group of \r and \n.
		for firstNL < len(s) && (s[firstNL] == '\r' || s[firstNL] == '\n') {
			firstNL++
		}
		return firstNL
	}
	switch {
	case end == len(s): // \s+(?!\S) at the end of the text
		return end
	case last > i: // \s+(?!\S) gives back the rune before the non-space
		return last
	default: // \s+
		return end
	}
}

// contraction returns the end of (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[j], or
// j when there is none. As compiled, the case folding makes 's match the
// long s ſ (U+017F) too.
func contraction(s string, j int) int {
	if j+1 >= len(s) || s[j] != '\'' {
		return j
	}
	third := func(want byte) int {
		if j+2 < len(s) && s[j+2]|0x20 == want {
			return j + 3
		}
		return j
	}
	switch s[j+1] {
	case 'S', 's', 'T', 't', 'M', 'm', 'D', 'd':
		return j + 2
	case 'R', 'r', 'V', 'v':
		return third('e')
	case 'L', 'l':
		return third('l')
	case 0xC5: // ſ is C5 BF
		if j+2 < len(s) && s[j+2] == 0xBF {
			return j + 3
		}
	}
	return j
}

func containsByte(set string, b byte) bool {
	for i := range len(set) {
		if set[i] == b {
			return true
		}
	}
	return false
}

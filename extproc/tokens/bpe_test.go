package tokens

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tiktoken-go/tokenizer"
)

var exactEncodings = []string{EncodingO200k, EncodingCl100k}

// libraryCodec returns the tokenizer library's codec, the reference that
// encoding.count must agree with.
func libraryCodec(t testing.TB, name string) tokenizer.Codec {
	t.Helper()
	c, err := tokenizer.Get(tokenizer.Encoding(name))
	require.NoError(t, err)
	return c
}

func mustEncoding(t testing.TB, name string) *encoding {
	t.Helper()
	e, err := loadEncoding(name)
	require.NoError(t, err)
	return e
}

// differentialCorpus is text of every shape the split patterns treat
// differently.
var differentialCorpus = []string{
	"", "a", " ", "hello world", "Hello, World!", "  leading and trailing  ",
	"The gateway estimates tokens before it admits a request, then reconciles with the backend's usage.",
	"func (c *Counter) Count(s string, budget *Budget) int {\n\tif len(s) == 0 {\n\t\treturn 0\n\t}\n}\n",
	`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":256,"n":1}`,
	"SELECT id, name FROM users WHERE email = 'x@y.z' AND age >= 18;",
	"https://example.com/path/to/file.html?q=1&r=two#frag // comment /* block */",
	"0 1 12 123 1234 12345 123456 1234567 3.14159 -42 1e10 0x1F 1,000,000 ١٢٣٤ ²³ ½ Ⅻ 〇",
	"你好，世界！这是一个测试。日本語のテキストも。한국어 텍스트.",
	"مرحبا بالعالم، هذا اختبار. שלום עולם",
	"Привет, мир! Ünïcödé text; Ελληνικά; ǅungla ǈj ǋ",
	"𝐀𝐁𝐂 𝐀𝐁𝐜 𐐀𐐨𐐩 𝒶𝒷 𠀀𠀁 abc𝟘𝟙𝟚𝟛 \U000E0001x \U0010FFFF",
	"👍 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇩🇪 ✊🏽 emoji😀text",
	"e\u0301 a\u0308\u0301 \u0301\u0301A \u0301abc x\u20dd ก่า नमस्ते",
	"it's I'M they're WE'VE you'll He'D don't 'S 'T 'Re 'vE 'Ll 'd 'x ' 's",
	"itſ it'ſ IT'ſ 'ſ ſ'ſ ABC'ſ abc'ſ",
	"ABC'S ABC's AbC'll ABCdef'RE'll", "\u0301's Ab\u0301's",
	"a\r\nb\n\nc\r\r\nd \n e  \n  \n  x\t\t\ny\n", "\n", "\r\n", "  ", "   ", "x  ", "x   \n", " \t\n \t",
	"x \u00a0y\u00a0\u00a0z\u3000\u3000w\u0085v\u2028u\u2029t\u200bs\ufeffr",
	"end with spaces   ", "end with newline\n", "end with mixed \n \n ",
	"!!!\n\n/// ---\r\n/*/ ?? ..\n", " !x", " \x7f", "a\x7fb", "\x7f\x7f", "\x00\x01\x1c\x1f\t\v\f",
	"<|endoftext|>", "<|endofprompt|> <|fim_prefix|>x<|fim_suffix|>", "hello<|endoftext|>world",
	"\xff", "a\xffb", "\xc3", "\xc3(", "\xed\xa0\x80", "\xf0\x9f\x98", "ok \xe2\x82 bad \x80\x80\x80 end",
	strings.Repeat("a", 200), strings.Repeat("ab", 300), strings.Repeat("😀", 60),
	strings.Repeat(" ", 150) + "x", strings.Repeat("\n", 120), strings.Repeat("ABCDEFG", 40),
	strings.Repeat("A\u0301", 80), strings.Repeat("9", 100), strings.Repeat("=-", 100),
	"aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IGJsb2IgdGhhdCBoYXMgbm8gc3BhY2VzIGF0IGFsbCBhbmQgZ29lcyBvbiBhbmQgb24=",
}

// trickyRunes is the alphabet of the random differential test: a few of
// every class, plus the runes the patterns name.
var trickyRunes = []rune("aZs'tSTmlLdDrevſ 0 9\t\n\r\v\f\u00a0\u0085\u3000\u2028!/.,-\x7f\u0301\u0308" +
	"ǅǈÉéßµªº中日한ع١²½😀👍\u200d\ufe0f🏽\ufffd")

// assertSameCount fails unless the encoding and the library count s alike.
func assertSameCount(t *testing.T, e *encoding, lib tokenizer.Codec, s string) {
	t.Helper()
	want, err := lib.Count(s)
	require.NoError(t, err)
	assert.Equal(t, want, e.count(s), "count of %q", s)
}

func TestCountMatchesLibrary(t *testing.T) {
	for _, name := range exactEncodings {
		t.Run(name, func(t *testing.T) {
			e, lib := mustEncoding(t, name), libraryCodec(t, name)
			for _, s := range differentialCorpus {
				assertSameCount(t, e, lib, s)
			}
			// Every pair of corpus texts, to cross each boundary shape.
			for _, a := range differentialCorpus {
				for _, b := range differentialCorpus[:20] {
					assertSameCount(t, e, lib, a+b)
				}
			}
		})
	}
}

// TestCountMatchesLibraryOnRepositoryText compares counts on real text of
// every kind this repository holds: Go, Markdown, YAML, JSON and shell.
func TestCountMatchesLibraryOnRepositoryText(t *testing.T) {
	var files []string
	for _, pattern := range []string{"*.go", "../*.go", "../../*.md", "../../docs/*", "../../examples/*/*", "../../config/*"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.NotEmpty(t, files)
	for _, name := range exactEncodings {
		t.Run(name, func(t *testing.T) {
			e, lib := mustEncoding(t, name), libraryCodec(t, name)
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					continue // a directory
				}
				assertSameCount(t, e, lib, string(b))
			}
		})
	}
}

func TestCountMatchesLibraryOnRandomText(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	texts := make([]string, 3000)
	for i := range texts {
		var b strings.Builder
		for range rng.IntN(24) {
			b.WriteRune(trickyRunes[rng.IntN(len(trickyRunes))])
		}
		if rng.IntN(8) == 0 {
			b.WriteByte(byte(0x80 + rng.IntN(0x80))) // a stray invalid byte
		}
		texts[i] = b.String()
	}
	for _, name := range exactEncodings {
		t.Run(name, func(t *testing.T) {
			e, lib := mustEncoding(t, name), libraryCodec(t, name)
			for _, s := range texts {
				assertSameCount(t, e, lib, s)
			}
		})
	}
}

// TestCountMatchesLibraryOnAllShortStrings compares every string of up to
// three symbols from one representative of each rune class and of each
// rune the patterns name.
func TestCountMatchesLibraryOnAllShortStrings(t *testing.T) {
	symbols := []string{"a", "A", "ǅ", "ª", "ʰ", "\u0301", "1", "½", " ", "\t", "\n", "\r",
		"\u00a0", "'", "s", "ſ", "l", "e", "!", "/", "\x7f", "😀", "\xff", "中"}
	for _, name := range exactEncodings {
		t.Run(name, func(t *testing.T) {
			e, lib := mustEncoding(t, name), libraryCodec(t, name)
			for _, a := range symbols {
				for _, b := range symbols {
					for _, c := range symbols {
						assertSameCount(t, e, lib, a+b+c)
					}
				}
			}
		})
	}
}

// TestClassifyMatchesSets checks the one-category-test classification
// against the split patterns' character sets, for every rune.
func TestClassifyMatchesSets(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // never decoded from UTF-8
		}
		letter, number, space := unicode.In(r, unicode.L), unicode.In(r, unicode.N), unicode.IsSpace(r)
		want := uint8(0)
		set := func(bit uint8, in bool) {
			if in {
				want |= bit
			}
		}
		set(clsU, unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M))
		set(clsL, unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M))
		set(clsLetter, letter)
		set(clsN, number)
		set(clsSpace, space)
		if r < 0x80 {
			set(clsPrefix, inASCIIBitmap(r, prefixASCIILo, prefixASCIIHi))
			set(clsPunct, inASCIIBitmap(r, punctASCIILo, punctASCIIHi))
		} else {
			set(clsPrefix, !letter && !number)
			set(clsPunct, !space && !letter && !number)
		}
		if got := classify(r); got != want {
			t.Fatalf("classify(%U) = %07b, want %07b", r, got, want)
		}
	}
}

func TestASCIIBitmapsAreTheNegatedSetsButDEL(t *testing.T) {
	for r := rune(0); r < 0x7f; r++ {
		letterOrDigit := unicode.IsLetter(r) || unicode.IsDigit(r)
		assert.Equal(t, !letterOrDigit && r != '\r' && r != '\n', inASCIIBitmap(r, prefixASCIILo, prefixASCIIHi), "%U", r)
		assert.Equal(t, !letterOrDigit && !unicode.IsSpace(r), inASCIIBitmap(r, punctASCIILo, punctASCIIHi), "%U", r)
	}
	assert.False(t, inASCIIBitmap(0x7f, prefixASCIILo, prefixASCIIHi))
	assert.False(t, inASCIIBitmap(0x7f, punctASCIILo, punctASCIIHi))
}

func TestRankTableHoldsEveryToken(t *testing.T) {
	for _, name := range exactEncodings {
		t.Run(name, func(t *testing.T) {
			e, lib := mustEncoding(t, name), libraryCodec(t, name)
			n := len(e.ranks.offs) - 1
			require.Greater(t, n, 100_000)
			for r := range uint32(n) {
				tok := e.ranks.token(r)
				if r%997 == 0 {
					want, err := lib.Decode([]uint{uint(r)})
					require.NoError(t, err)
					require.Equal(t, want, tok)
				}
				require.Equal(t, r, e.ranks.rank(tok))
			}
			assert.Equal(t, uint32(noRank), e.ranks.rank("<|endoftext|>"), "special tokens are not ranked")
			_, err := lib.Decode([]uint{uint(n)})
			assert.Error(t, err, "the table ends where the vocabulary does")
		})
	}
}

func TestCountIsSafeForConcurrentUse(t *testing.T) {
	for _, name := range exactEncodings {
		e := mustEncoding(t, name)
		want := make([]int, len(differentialCorpus))
		for i, s := range differentialCorpus {
			want[i] = e.count(s)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i, s := range differentialCorpus {
					assert.Equal(t, want[i], e.count(s))
				}
			})
		}
		wg.Wait()
	}
}

func TestCountDoesNotAllocate(t *testing.T) {
	text := string(prompt(4 << 10))
	long := strings.Repeat("xq", 200) // merged on the heap, with pooled scratch
	for _, name := range exactEncodings {
		e := mustEncoding(t, name)
		assert.Zero(t, testing.AllocsPerRun(20, func() { e.count(text) }), name)
		if !raceEnabled {
			e.count(long)
			assert.Zero(t, testing.AllocsPerRun(20, func() { e.count(long) }), name)
		}
	}
}

// FuzzCountMatchesLibrary checks that the exact counters agree with the
// library on arbitrary text, valid UTF-8 or not.
func FuzzCountMatchesLibrary(f *testing.F) {
	for _, s := range differentialCorpus {
		f.Add(s)
	}
	encs := make([]*encoding, len(exactEncodings))
	libs := make([]tokenizer.Codec, len(exactEncodings))
	for i, name := range exactEncodings {
		encs[i], libs[i] = mustEncoding(f, name), libraryCodec(f, name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i := range encs {
			want, err := libs[i].Count(s)
			require.NoError(t, err)
			if got := encs[i].count(s); got != want {
				t.Fatalf("%s: count of %q = %d, library says %d", exactEncodings[i], s, got, want)
			}
			// Through the count cache: first sighting, cached, hit.
			for round := range 3 {
				if got := encs[i].cache.count(s, encs[i]); got != want {
					t.Fatalf("%s: cached count of %q (round %d) = %d, library says %d", exactEncodings[i], s, round, got, want)
				}
			}
		}
	})
}

// BenchmarkCount compares the library's Count with the exact counter on the
// prose of BenchmarkEstimate's prompts and on a mix of code, CJK and emoji.
func BenchmarkCount(b *testing.B) {
	var parts []string
	for _, s := range differentialCorpus[5:24] {
		if utf8.ValidString(s) {
			parts = append(parts, s)
		}
	}
	mixed := strings.Join(parts, "\n")
	texts := map[string]string{
		"prose/1KiB":  string(prompt(1 << 10)),
		"prose/32KiB": string(prompt(32 << 10)),
		"mixed/32KiB": strings.Repeat(mixed, (32<<10)/len(mixed)+1)[:32<<10],
	}
	for _, name := range exactEncodings {
		e, lib := mustEncoding(b, name), libraryCodec(b, name)
		for _, kind := range []string{"prose/1KiB", "prose/32KiB", "mixed/32KiB"} {
			text := texts[kind]
			b.Run(name+"/"+kind+"/library", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					_, _ = lib.Count(text)
				}
			})
			b.Run(name+"/"+kind+"/exact", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					e.count(text)
				}
			})
		}
	}
}

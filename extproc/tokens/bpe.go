package tokens

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

// encoding counts tokens of one byte-pair encoding without allocating: it
// splits text into pieces (split.go) and merges each piece's bytes by rank.
// It counts exactly what the tokenizer library's Codec.Count counts,
// including its treatment of invalid UTF-8 (each invalid byte is counted as
// U+FFFD) and of special-token text such as "<|endoftext|>" (plain text).
// It allocates only for pieces that hold invalid UTF-8.
type encoding struct {
	ranks *rankTable
	// piece returns the end of the piece starting at s[i], or -1 to skip a rune.
	piece func(s string, i int) int
	// cache holds the counts of long strings that come back (cache.go),
	// shared by every Counter of the encoding.
	cache *countCache
}

var (
	encodingsMu sync.Mutex
	encodings   = map[string]*encoding{}
)

// loadEncoding returns the shared encoding for o200k_base or cl100k_base,
// building its rank table on first use (about 70 ms and 6.3 MiB for
// o200k_base, 30 ms and 3.2 MiB for cl100k_base, plus a 128 KiB rune
// class table shared by both).
func loadEncoding(name string) (*encoding, error) {
	var piece func(string, int) int
	switch name {
	case EncodingO200k:
		piece = pieceO200k
	case EncodingCl100k:
		piece = pieceCl100k
	default:
		return nil, fmt.Errorf("cannot count with %q: %w", name, ErrUnknownEncoding)
	}
	encodingsMu.Lock()
	defer encodingsMu.Unlock()
	if e, ok := encodings[name]; ok {
		return e, nil
	}
	initClasses()
	codec, err := tokenizer.Get(tokenizer.Encoding(name))
	if err != nil {
		return nil, fmt.Errorf("cannot load encoding %s: %w", name, err)
	}
	ranks, err := buildRankTable(codec)
	if err != nil {
		return nil, fmt.Errorf("cannot load encoding %s: %w", name, err)
	}
	e := &encoding{ranks: ranks, piece: piece, cache: newCountCache()}
	encodings[name] = e
	return e, nil
}

// count returns the number of tokens in s.
func (e *encoding) count(s string) int {
	valid := utf8.ValidString(s)
	n := 0
	for i := 0; i < len(s); {
		end := e.piece(s, i)
		if end < 0 {
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
			continue
		}
		p := s[i:end]
		if !valid && !utf8.ValidString(p) {
			// The splitter reads an invalid byte as U+FFFD, and so does
			// the library, whose pieces then hold U+FFFD's bytes.
			p = replaceInvalid(p)
		}
		n += e.ranks.countPiece(p)
		i = end
	}
	return n
}

// replaceInvalid returns s with every byte that is not part of a valid
// UTF-8 sequence replaced by U+FFFD.
func replaceInvalid(s string) string {
	var b strings.Builder
	b.Grow(3 * len(s))
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+w])
		}
		i += w
	}
	return b.String()
}

// rankTable maps token bytes to their rank (the token id) in an
// open-addressing hash table over one blob of token bytes. It holds no
// pointer per token, so the garbage collector does not scan it entry by entry.
type rankTable struct {
	blob  string   // every token's bytes, by rank
	offs  []uint32 // token r is blob[offs[r]:offs[r+1]]
	slots []uint64 // hash tag<<32 | rank+1; 0 is an empty slot
	mask  uint64
	// pairs holds the rank of every two-byte string, the most frequent
	// lookup of a merge, indexed by the bytes big-endian.
	pairs []uint32
}

var errEmptyVocabulary = errors.New("empty vocabulary")

// buildRankTable decodes the codec's token ids from 0 up to the first that
// does not decode into a rankTable. Ids are dense in every supported
// encoding (TestRankTableHoldsEveryToken checks that the table ends where
// the vocabulary does); special tokens are not in the vocabulary.
func buildRankTable(codec tokenizer.Codec) (*rankTable, error) {
	var blob strings.Builder
	offs := []uint32{0}
	for id := uint(0); ; id++ {
		tok, err := codec.Decode([]uint{id})
		if err != nil || tok == "" {
			break
		}
		blob.WriteString(tok)
		offs = append(offs, uint32(blob.Len()))
	}
	n := len(offs) - 1
	if n == 0 {
		return nil, errEmptyVocabulary
	}
	size := 1
	for size < 2*n {
		size <<= 1
	}
	t := &rankTable{
		blob:  blob.String(),
		offs:  offs,
		slots: make([]uint64, size),
		mask:  uint64(size - 1),
		pairs: make([]uint32, 1<<16),
	}
	for i := range t.pairs {
		t.pairs[i] = noRank
	}
	for r := range n {
		tok := t.token(uint32(r))
		if len(tok) == 2 {
			t.pairs[uint16(tok[0])<<8|uint16(tok[1])] = uint32(r)
		}
		h := hashString(tok)
		i := h & t.mask
		for t.slots[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = h>>32<<32 | uint64(r+1)
	}
	return t, nil
}

func (t *rankTable) token(r uint32) string { return t.blob[t.offs[r]:t.offs[r+1]] }

// rank returns the rank of token p, or noRank when p is not a token.
func (t *rankTable) rank(p string) uint32 {
	if len(p) == 2 {
		return t.pairs[uint16(p[0])<<8|uint16(p[1])]
	}
	h := hashString(p)
	tag := h >> 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		e := t.slots[i]
		if e == 0 {
			return noRank
		}
		if e>>32 == tag {
			if r := uint32(e) - 1; t.token(r) == p {
				return r
			}
		}
	}
}

// hashString hashes s eight bytes at a time with a splitmix64 finalizer
// per word, so that both the low bits (the slot) and the high bits (the
// tag) depend on every byte. The table never changes after it is built, so
// no input can lengthen its probe sequences and an unkeyed hash suffices.
func hashString(s string) uint64 {
	h := uint64(len(s)) * 0x9e3779b97f4a7c15
	for ; len(s) > 8; s = s[8:] {
		h = mix64(h ^ load64(s))
	}
	return mix64(h ^ prefix64(s))
}

// prefix64 returns the first eight bytes of s little-endian, zero-padded
// when s is shorter.
func prefix64(s string) uint64 {
	switch n := len(s); {
	case n >= 8:
		return load64(s)
	case n >= 4: // two loads, overlapping when n < 8
		return load32(s) | load32(s[n-4:])<<(8*(n-4))
	default:
		var v uint64
		for i := range n {
			v |= uint64(s[i]) << (8 * i)
		}
		return v
	}
}

func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load32(s string) uint64 {
	_ = s[3]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}

// noRank is the rank of bytes that are not a token.
const noRank = math.MaxUint32

// mergeScanMax is the piece length below which countPiece merges with a
// quadratic scan on the stack, and from which with a heap: the library's
// threshold, so that both run the same procedure on every piece.
const mergeScanMax = 96

// countPiece returns how many tokens byte-pair encoding makes of piece:
// repeatedly merge the adjacent pair of parts whose concatenation has the
// lowest rank, the leftmost on ties, until no pair is a token.
func (t *rankTable) countPiece(p string) int {
	if len(p) == 1 || t.rank(p) != noRank {
		return 1
	}
	if len(p) < mergeScanMax {
		return t.countScan(p)
	}
	return t.countHeap(p)
}

type mergePart struct {
	off, rank uint32
}

// countScan is countPiece for pieces shorter than mergeScanMax.
func (t *rankTable) countScan(p string) int {
	var buf [mergeScanMax + 1]mergePart
	parts := buf[:len(p)+1]
	for i := range parts {
		parts[i] = mergePart{uint32(i), noRank}
	}
	// pairRank is the rank of parts[i] merged with the following skip+1 parts.
	pairRank := func(parts []mergePart, i, skip int) uint32 {
		if i+skip+2 < len(parts) {
			return t.rank(p[parts[i].off:parts[i+skip+2].off])
		}
		return noRank
	}
	for i := 0; i < len(parts)-2; i++ {
		parts[i].rank = pairRank(parts, i, 0)
	}
	for len(parts) > 1 {
		best, at := uint32(noRank), 0
		for i, part := range parts[:len(parts)-1] {
			if part.rank < best {
				best, at = part.rank, i
			}
		}
		if best == noRank {
			break
		}
		parts[at].rank = pairRank(parts, at, 1)
		if at > 0 {
			parts[at-1].rank = pairRank(parts, at-1, 1)
		}
		parts = append(parts[:at+1], parts[at+2:]...)
	}
	return len(parts) - 1
}

// mergeNode is a part boundary in countHeap's linked list; rank is that of
// the part starting here merged with the next one.
type mergeNode struct {
	prev, next int32
	rank       uint32
}

type mergeCandidate struct {
	rank uint32
	off  int32
}

// mergeScratch is countHeap's reusable memory.
type mergeScratch struct {
	nodes []mergeNode
	heap  []mergeCandidate
}

var mergeScratchPool = sync.Pool{New: func() any { return new(mergeScratch) }}

// countHeap is countPiece for long pieces: the same merges in O(n log n),
// with a min-heap of candidate pairs ordered by rank, then offset.
func (t *rankTable) countHeap(p string) int {
	sc := mergeScratchPool.Get().(*mergeScratch)
	defer mergeScratchPool.Put(sc)
	n := int32(len(p))
	if cap(sc.nodes) < int(n)+1 {
		sc.nodes = make([]mergeNode, n+1)
		sc.heap = make([]mergeCandidate, 0, n)
	}
	nodes := sc.nodes[:n+1]
	for i := range nodes {
		nodes[i] = mergeNode{prev: int32(i) - 1, next: int32(i) + 1, rank: noRank}
	}
	nodes[n].next = -1
	rankOf := func(i int32) uint32 {
		j := nodes[i].next
		if j < 0 {
			return noRank
		}
		k := nodes[j].next
		if k < 0 {
			return noRank
		}
		return t.rank(p[i:k])
	}
	h := candidateHeap(sc.heap[:0])
	for i := int32(0); i+2 <= n; i++ {
		if r := rankOf(i); r != noRank {
			nodes[i].rank = r
			h = append(h, mergeCandidate{r, i})
		}
	}
	h.init()
	count := int(n)
	for len(h) > 0 {
		top := h.pop()
		i := top.off
		if nodes[i].rank != top.rank {
			continue // stale: this boundary's pair changed since
		}
		j := nodes[i].next
		k := nodes[j].next
		nodes[j].rank = noRank
		nodes[i].next = k
		if k >= 0 {
			nodes[k].prev = i
		}
		count--
		for _, b := range [2]int32{i, nodes[i].prev} {
			if b < 0 {
				continue
			}
			nodes[b].rank = rankOf(b)
			if nodes[b].rank != noRank {
				h.push(mergeCandidate{nodes[b].rank, b})
			}
		}
	}
	sc.heap = h[:0]
	return count
}

// candidateHeap is a binary min-heap of merge candidates by rank, then
// offset, so that among equal ranks the leftmost pair merges first.
type candidateHeap []mergeCandidate

func (h candidateHeap) less(a, b int) bool {
	if h[a].rank != h[b].rank {
		return h[a].rank < h[b].rank
	}
	return h[a].off < h[b].off
}

func (h candidateHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *candidateHeap) push(c mergeCandidate) {
	*h = append(*h, c)
	h.up(len(*h) - 1)
}

func (h *candidateHeap) pop() mergeCandidate {
	old := *h
	top := old[0]
	last := len(old) - 1
	old[0] = old[last]
	*h = old[:last]
	h.down(0)
	return top
}

func (h candidateHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (h candidateHeap) down(i int) {
	for {
		child := 2*i + 1
		if child >= len(h) {
			return
		}
		if right := child + 1; right < len(h) && h.less(right, child) {
			child = right
		}
		if !h.less(child, i) {
			return
		}
		h[i], h[child] = h[child], h[i]
		i = child
	}
}

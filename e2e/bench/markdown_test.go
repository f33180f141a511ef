package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMergeMarkdown(t *testing.T) {
	gen := []byte("# Performance\ntable\n")
	fresh := mergeMarkdown(nil, gen)
	assert.Equal(t, markBegin+"\n# Performance\ntable\n"+markEnd+"\n", string(fresh))

	page := []byte("intro\n" + string(fresh) + "\n## Findings\nkept\n")
	out := mergeMarkdown(page, []byte("# Performance\nnew table\n"))
	assert.Equal(t, "intro\n"+markBegin+"\n# Performance\nnew table\n"+markEnd+"\n\n## Findings\nkept\n", string(out))
}

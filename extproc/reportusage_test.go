package extproc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// outputEstimator is what the cut-stream measurement drives: bytesPerToken.
type outputEstimator interface {
	learn(key string, bytes uint64, output int64)
	estimate(key string, bytes uint64) (int64, bool)
}

var _ outputEstimator = (*bytesPerToken)(nil)

// cutBand is the cut points one row of the error table covers: streams
// cut after from..to tokens.
type cutBand struct {
	name     string
	from, to int
}

var cutBands = []cutBand{
	{"1-10", 1, 10},
	{"11-100", 11, 100},
	{"101-800", 101, 800},
	{">10", 11, 800},
}

// cutError is the estimate's error over one band's cut points.
type cutError struct {
	n       int
	meanAbs float64 // tokens
	bias    float64 // mean signed relative error, %
	p95     float64 // |relative error|, %
	max     float64 // |relative error|, %
}

func (e cutError) String() string {
	return fmt.Sprintf("%6d cuts  mean |err| %5.2f tok  bias %+6.2f%%  p95 %5.2f%%  max %6.2f%%", e.n, e.meanAbs, e.bias, e.p95, e.max)
}

// measureCutEstimate streams responses of 20-800 tokens of prose shaped as
// shape: three in four complete (est learns them), every fourth (after the
// first 40) cut after each of its tokens in turn and estimated from the
// wire bytes received up to the cut. It returns the error per band of
// cutBands.
func measureCutEstimate(t *testing.T, pieces []wirePiece, shape wireShape, est outputEstimator) []cutError {
	t.Helper()
	const key, responses = "backend/model", 400
	rng := rand.New(rand.NewPCG(16, 1))
	type point struct{ truth, rel, abs float64 }
	var points []point
	for i := range responses {
		w := shape.build(rng, "meta-llama/Llama-3.1-8B-Instruct", responseSpan(rng, pieces, 20+rng.IntN(781)))
		if i < 40 || i%4 != 3 {
			est.learn(key, w.total(), int64(w.output))
			continue
		}
		got, truth := w.head, 0
		for k, e := range w.events {
			got, truth = got+e, truth+w.tokens[k]
			n, ok := est.estimate(key, uint64(got))
			if !ok {
				t.Fatalf("%s: no estimate after %d learnt responses", shape.name, i)
			}
			diff := float64(n - int64(truth))
			points = append(points, point{float64(truth), diff / float64(truth), math.Abs(diff)})
		}
	}
	out := make([]cutError, len(cutBands))
	for b, band := range cutBands {
		var rels []float64
		var e cutError
		for _, p := range points {
			if p.truth < float64(band.from) || p.truth > float64(band.to) {
				continue
			}
			e.n++
			e.meanAbs += p.abs
			e.bias += p.rel
			rels = append(rels, math.Abs(p.rel))
		}
		if e.n == 0 {
			t.Fatalf("%s: no cut in band %s", shape.name, band.name)
		}
		sort.Float64s(rels)
		e.meanAbs /= float64(e.n)
		e.bias *= 100 / float64(e.n)
		e.p95 = 100 * rels[int(math.Ceil(0.95*float64(len(rels))))-1]
		e.max = 100 * rels[len(rels)-1]
		out[b] = e
	}
	return out
}

// TestCutStreamEstimateError pins how far the output charged for a stream
// cut before its usage (wire bytes received over the learnt bytes per
// token) is from the tokens the backend really sent, on o200k_base
// tokenized prose in three backends' framing. `go test -v -run
// TestCutStreamEstimateError ./extproc` prints the table (docs/limits.md).
func TestCutStreamEstimateError(t *testing.T) {
	pieces := proseTokens(t)
	// bounds are the largest p95 and bias (|%|) each band may show.
	type bounds struct{ p95, bias [4]float64 }
	tests := map[string]struct {
		shape wireShape
		want  bounds
	}{
		"vllm chat completions": {vllmChat, bounds{
			p95:  [...]float64{0, 0, 0, 0},
			bias: [...]float64{0, 0, 0, 0},
		}},
		"sglang chat completions": {sglangChat, bounds{
			p95:  [...]float64{0, 0, 0, 0},
			bias: [...]float64{0, 0, 0, 0},
		}},
		"anthropic messages": {messages, bounds{
			p95:  [...]float64{0, 0, 0, 0},
			bias: [...]float64{0, 0, 0, 0},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := measureCutEstimate(t, pieces, tc.shape, new(bytesPerToken))
			for b, band := range cutBands {
				t.Logf("%-18s cut after %-7s tokens: %v", tc.shape.name, band.name, got[b])
			}
			for b, band := range cutBands {
				if got[b].p95 > tc.want.p95[b] {
					t.Errorf("cut after %s tokens: p95 relative error %.2f%%, want at most %.2f%%", band.name, got[b].p95, tc.want.p95[b])
				}
				if math.Abs(got[b].bias) > tc.want.bias[b] {
					t.Errorf("cut after %s tokens: bias %+.2f%%, want within ±%.2f%%", band.name, got[b].bias, tc.want.bias[b])
				}
			}
		})
	}
}

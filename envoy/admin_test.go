package envoy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseActive(t *testing.T) {
	for name, tc := range map[string]struct {
		json string
		want int64
		err  bool
	}{
		"sums listeners, skips admin": {json: `{"stats":[
			{"name":"http.admin.downstream_rq_active","value":1},
			{"name":"http.streamgate.downstream_rq_active","value":3},
			{"name":"http.edge.downstream_rq_active","value":2},
			{"name":"cluster.a.upstream_rq_active","value":7}]}`, want: 5},
		"none":      {json: `{"stats":[]}`, want: 0},
		"not json":  {json: `<html>`, err: true},
		"bad value": {json: `{"stats":[{"name":"http.x.downstream_rq_active","value":"many"}]}`, err: true},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := parseActive(strings.NewReader(tc.json))
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, n)
		})
	}
}

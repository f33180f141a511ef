package cli

import "testing"

func TestSharedProcs(t *testing.T) {
	for _, tc := range []struct {
		current int
		env     string
		want    int
		set     bool
	}{
		{2, "", 1, true},
		{8, "", 4, true},
		{3, "", 1, true},
		{1, "", 1, false},
		{8, "6", 8, false}, // the operator's choice stands
	} {
		got, set := sharedProcs(tc.current, tc.env)
		if got != tc.want || set != tc.set {
			t.Errorf("sharedProcs(%d, %q) = %d, %v; want %d, %v", tc.current, tc.env, got, set, tc.want, tc.set)
		}
	}
}

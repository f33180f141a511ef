package picking

import "github.com/streamgate/streamgate/config"

// prefixIndex is an endpoint's bounded index of the prompt blocks recently
// routed to it. To be written (issue 15 item 3).
type prefixIndex struct{}

func newPrefixIndex(cfg *config.Picking) *prefixIndex { return nil }

package bridge

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestKafkaCommittable: the offset committed per partition is the lowest
// still pending, so a message acknowledged out of order never lets the
// commit skip one still in flight.
func TestKafkaCommittable(t *testing.T) {
	s := &kafkaSource{parts: map[int32]*partition{}}
	p := s.part(0)
	for _, o := range []int64{10, 11, 12, 13} {
		p.pending[o] = struct{}{}
		p.next = o + 1
	}
	delete(p.pending, 11)
	delete(p.pending, 13)
	assert.Equal(t, map[int32]int64{0: 10}, s.committable(nil))
	delete(p.pending, 10)
	assert.Equal(t, map[int32]int64{0: 12}, s.committable(nil))
	delete(p.pending, 12)
	assert.Equal(t, map[int32]int64{0: 14}, s.committable(nil))
	p.committed = 14
	assert.Empty(t, s.committable(nil), "nothing new to commit")
	s.part(1) // assigned, nothing fetched
	assert.Empty(t, s.committable(nil))
	p.hwm = 20
	n, _ := s.Lag(t.Context())
	assert.Equal(t, int64(6), n)
}

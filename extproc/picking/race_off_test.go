//go:build !race

package picking

const raceEnabled = false

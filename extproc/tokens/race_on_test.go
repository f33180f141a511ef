//go:build race

package tokens

// raceEnabled reports a -race build, whose sync.Pool drops items on purpose.
const raceEnabled = true

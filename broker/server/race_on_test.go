//go:build race

package server

// raceEnabled: the race detector's runtime allocates on its own, so tests
// that count allocations skip under -race.
const raceEnabled = true

package exchange

import (
	"fmt"
	"slices"
)

// Query modes: what a match request is for. The responder's policy says,
// per partner and kind, which reaches each mode may ask.
const (
	// ModeEnforcement asks on behalf of an investigation of suspects.
	ModeEnforcement = "enforcement"
	// ModeSafeguarding asks to find and protect victims and witnesses.
	ModeSafeguarding = "safeguarding"
)

// Reaches: the parts of an agency's holdings that have a key and an
// encoded set of their own (per epoch and kind). The querier learns, for a
// hit, which reach's key it hit under.
const (
	// ReachOpen holds suspect records and records of unknown class.
	ReachOpen = "open"
	// ReachVictim holds victims' records.
	ReachVictim = "victim"
	// ReachWitness holds witnesses' records.
	ReachWitness = "witness"
)

// Reaches lists every reach in its canonical order (the order a request
// names them in).
var Reaches = []string{ReachOpen, ReachVictim, ReachWitness}

// ValidMode reports whether m is one of the query modes.
func ValidMode(m string) bool { return m == ModeEnforcement || m == ModeSafeguarding }

// ValidReach reports whether r is one of the reaches.
func ValidReach(r string) bool { return slices.Contains(Reaches, r) }

// checkReaches checks that rs names at least one reach, each known, each
// once, in canonical order (so a request has one encoding and one meaning).
func checkReaches(rs []string) error {
	if len(rs) == 0 {
		return fmt.Errorf("no reach named")
	}
	last := -1
	for _, r := range rs {
		i := slices.Index(Reaches, r)
		if i < 0 {
			return fmt.Errorf("unknown reach %q", r)
		}
		if i <= last {
			return fmt.Errorf("reaches repeated or out of order")
		}
		last = i
	}
	return nil
}

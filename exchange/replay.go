package exchange

import (
	"sync"
	"time"
)

// evaluated remembers the requests a server has evaluated, by the SHA-256
// of their signature, for as long as a copy would pass the freshness check
// (the request's time within MaxSkew of the clock).
//
// The ledger treats byte-identical requests as a retry of one command: the
// copy is admitted again, with the budget reserved once, so that a querier
// whose first replica failed before answering can ask another. That is a
// retry to another replica; to this one, a copy of a request it has
// already evaluated is a replay, and without this memory a partner could
// have it evaluate one admitted batch again and again at no cost to its
// budget. The server refuses such a copy with ReasonReplay.
type evaluated struct {
	skew time.Duration
	max  int

	mu sync.Mutex
	m  map[[32]byte]time.Time // signature digest to request time
}

// maxEvaluated bounds the requests remembered. Budgets keep an honest
// federation far below it within twice MaxSkew; past it, the oldest half
// is forgotten.
const maxEvaluated = 1 << 16

func newEvaluated(skew time.Duration) *evaluated {
	return &evaluated{skew: skew, max: maxEvaluated, m: map[[32]byte]time.Time{}}
}

// add records the request with signature digest sig and time at; it
// reports false when it was recorded before (a replay).
func (e *evaluated) add(sig [32]byte, at, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.m[sig]; ok {
		return false
	}
	if len(e.m) >= e.max {
		e.prune(now)
	}
	e.m[sig] = at
	return true
}

// forget drops sig: its request was not evaluated (unavailable), and the
// querier may ask again with the same bytes.
func (e *evaluated) forget(sig [32]byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, sig)
}

// prune drops the requests a copy of which would fail the freshness check
// now; if that frees too little, the older half. The caller holds e.mu.
func (e *evaluated) prune(now time.Time) {
	for k, at := range e.m {
		if now.Sub(at) > e.skew {
			delete(e.m, k)
		}
	}
	if len(e.m) < e.max*3/4 {
		return
	}
	var ts []time.Time
	for _, at := range e.m {
		ts = append(ts, at)
	}
	// The median time: drop everything older.
	mid := nth(ts, len(ts)/2)
	for k, at := range e.m {
		if at.Before(mid) {
			delete(e.m, k)
		}
	}
}

// nth returns the n-th smallest of ts (quickselect; reorders ts).
func nth(ts []time.Time, n int) time.Time {
	lo, hi := 0, len(ts)-1
	for lo < hi {
		p := ts[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for ts[i].Before(p) {
				i++
			}
			for p.Before(ts[j]) {
				j--
			}
			if i <= j {
				ts[i], ts[j] = ts[j], ts[i]
				i++
				j--
			}
		}
		switch {
		case n <= j:
			hi = j
		case n >= i:
			lo = i
		default:
			return ts[n]
		}
	}
	return ts[n]
}

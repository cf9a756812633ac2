package psi

import (
	"crypto/rand"
	"runtime"
	"testing"
	"time"
)

// TestNoGoroutineOutlivesCall checks that the parallel calls leave no
// goroutine behind.
func TestNoGoroutineOutlivesCall(t *testing.T) {
	before := runtime.NumGoroutine()
	r := newTestResponder(t, "phone")
	outs, err := r.Precompute(ids("phone", 0, 600))
	if err != nil {
		t.Fatal(err)
	}
	set := mustSet(t, r, 1, outs)
	q := newTestQuerier(t, r, MinChunk)
	qy, req, err := q.Blind(ids("phone", 500, 700), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.Evaluate(req, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if hits, err := qy.Match(ev, set); err != nil || len(hits) != 100 {
		t.Fatalf("Match = %d hits, %v; want 100", len(hits), err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the calls; %d before", runtime.NumGoroutine(), before)
		}
		runtime.Gosched()
	}
}

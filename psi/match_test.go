package psi

import (
	"crypto/rand"
	"slices"
	"testing"
	"time"
)

// TestMatchPlanted matches 10,000 querier identifiers against 100,000
// holdings with exactly 1,000 in common.
func TestMatchPlanted(t *testing.T) {
	r := newTestResponder(t, "phone")
	start := time.Now()
	holdings := ids("phone", 0, 100_000)
	outs, err := r.Precompute(holdings)
	if err != nil {
		t.Fatalf("Precompute: %v", err)
	}
	t.Logf("precompute 100,000: %v", time.Since(start))
	es, err := r.EncodeSet(1, outs)
	if err != nil {
		t.Fatalf("EncodeSet: %v", err)
	}
	set, err := NewSet(es)
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	// 1,000 in common (holdings 50,000..50,999), 9,000 not held.
	query := append(ids("phone", 50_000, 51_000), ids("phone", 200_000, 209_000)...)
	mrandShuffle(query)
	var want []int
	for i, q := range query {
		if string(q) < "phone:+4915000051000" && string(q) >= "phone:+4915000050000" {
			want = append(want, i)
		}
	}
	start = time.Now()
	q := newTestQuerier(t, r, 0)
	qy, req, err := q.Blind(query, rand.Reader)
	if err != nil {
		t.Fatalf("Blind: %v", err)
	}
	if req.Len() != 10_240 {
		t.Errorf("request of %d elements; want 10240", req.Len())
	}
	ev, err := r.Evaluate(req, rand.Reader)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	hits, err := qy.Match(ev, set)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	t.Logf("match 10,000: %v", time.Since(start))
	if len(want) != 1000 || !slices.Equal(hits, want) {
		t.Fatalf("Match returned %d hits; want the %d planted ones", len(hits), len(want))
	}
}

func mrandShuffle(x [][]byte) {
	rnd := detReader(99)
	var b [8]byte
	for i := len(x) - 1; i > 0; i-- {
		rnd.Read(b[:])
		j := int(uint64(b[0])|uint64(b[1])<<8|uint64(b[2])<<16|uint64(b[3])<<24) % (i + 1)
		x[i], x[j] = x[j], x[i]
	}
}

package psi

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"
)

// detReader is a deterministic randomness source for tests.
func detReader(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return mrand.NewChaCha8(s)
}

// dummy frames padding under a reserved first byte that test inputs never use.
func dummy(r io.Reader) ([]byte, error) {
	b := make([]byte, 17)
	b[0] = 0xff
	if _, err := io.ReadFull(r, b[1:]); err != nil {
		return nil, err
	}
	return b, nil
}

func ids(prefix string, from, to int) [][]byte {
	out := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Appendf(nil, "%s:+4915%09d", prefix, i))
	}
	return out
}

func testSeed(b byte) Seed {
	var s Seed
	for i := range s {
		s[i] = b
	}
	return s
}

func newTestResponder(t testing.TB, kind string) *Responder {
	t.Helper()
	r, err := NewResponder(ResponderConfig{Seed: testSeed(7), Agency: "DE", Kind: kind, Epoch: 3, Reach: "open"})
	if err != nil {
		t.Fatalf("NewResponder: %v", err)
	}
	return r
}

// newReachResponder is newTestResponder's key for another reach.
func newReachResponder(t testing.TB, kind, reach string) *Responder {
	t.Helper()
	r, err := NewResponder(ResponderConfig{Seed: testSeed(7), Agency: "DE", Kind: kind, Epoch: 3, Reach: reach})
	if err != nil {
		t.Fatalf("NewResponder(%s): %v", reach, err)
	}
	return r
}

func newTestQuerier(t testing.TB, r *Responder, chunk int) *Querier {
	t.Helper()
	q, err := NewQuerier(QuerierConfig{Key: r.PublicKey(), Kind: r.Kind(), Epoch: r.Epoch(), Dummy: dummy, ChunkSize: chunk})
	if err != nil {
		t.Fatalf("NewQuerier: %v", err)
	}
	return q
}

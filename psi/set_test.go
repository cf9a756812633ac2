package psi

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"
)

func TestBucket(t *testing.T) {
	tests := []struct{ n, want int }{
		{0, 1}, {1, 1}, {2, 2}, {3, 4}, {5, 8}, {1000, 1024}, {1024, 1024},
		{1025, 2048}, {2048, 2048}, {2049, 3072}, {10_000, 10_240},
	}
	for _, tc := range tests {
		if got := Bucket(tc.n); got != tc.want {
			t.Errorf("Bucket(%d) = %d; want %d", tc.n, got, tc.want)
		}
	}
}

func TestCapacity(t *testing.T) {
	tests := []struct{ n, want int }{
		{0, 1024}, {1, 1024}, {896, 1024}, {897, 1088}, {100_000, 114_688},
		{1_000_000, 1_179_648}, {Padded(MaxCapacity), MaxCapacity}, {Padded(MaxCapacity) + 1, 0}, {-1, 0},
	}
	for _, tc := range tests {
		got := Capacity(tc.n)
		if got != tc.want {
			t.Errorf("Capacity(%d) = %d; want %d", tc.n, got, tc.want)
		}
		if got != 0 && (Padded(got) < tc.n || !validCapacity(uint64(got))) {
			t.Errorf("Capacity(%d) = %d: padded %d too small or not a bucket", tc.n, got, Padded(got))
		}
	}
}

func TestSeedNext(t *testing.T) {
	s := testSeed(1)
	want, err := hkdf.Key(sha256.New, s[:], nil, "xborder/v1/ratchet", 32)
	if err != nil {
		t.Fatal(err)
	}
	n := s.Next()
	if !bytes.Equal(n[:], want) {
		t.Errorf("Next() = %x; want %x", n, want)
	}
	if n == s || n.Next() == n {
		t.Error("ratchet returned its input")
	}
	r0 := newTestResponder(t, "phone")
	r1, err := NewResponder(ResponderConfig{Seed: testSeed(7).Next(), Agency: "DE", Kind: "phone", Epoch: 4, Reach: "open"})
	if err != nil {
		t.Fatal(err)
	}
	if r0.PublicKey().Equal(r1.PublicKey()) {
		t.Error("keys of consecutive epochs are equal")
	}
}

func TestRice(t *testing.T) {
	tests := []struct {
		name     string
		capacity uint64
		values   []uint64
	}{
		{"single at zero", 1024, []uint64{0}},
		{"single at top", MaxCapacity, []uint64{MaxCapacity<<40 - 1}},
		{"duplicates", 1024, []uint64{5, 5, 1 << 49, 1<<50 - 1}},
		{"max capacity spread", MaxCapacity, []uint64{0, 1 << 63, 1<<64 - 2, 1<<64 - 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := riceParam(tc.capacity, uint64(len(tc.values)))
			data := riceEncode(tc.values, k)
			limit := tc.capacity<<40 - 1
			lo, hi := riceBounds(uint64(len(tc.values)), limit, k)
			if uint64(len(data)) < lo || uint64(len(data)) > hi {
				t.Errorf("code of %d bytes outside [%d, %d]", len(data), lo, hi)
			}
			got, err := riceDecode(data, uint64(len(tc.values)), limit, k)
			if err != nil || !slices.Equal(got, tc.values) {
				t.Errorf("riceDecode = %v, %v; want %v", got, err, tc.values)
			}
		})
	}
}

// randomOutputs returns n distinct-with-overwhelming-probability random
// 64-byte strings standing in for PRF outputs (outputs are uniform).
func randomOutputs(rnd io.Reader, n int) [][]byte {
	buf := make([]byte, 64*n)
	io.ReadFull(rnd, buf)
	out := make([][]byte, n)
	for i := range out {
		out[i] = buf[i*64 : (i+1)*64 : (i+1)*64]
	}
	return out
}

// TestSetSizeAndFalsePositives builds a set of 1,000,000 random outputs,
// checks its size (at most 5.5 bytes per identifier), that every member is
// found, and that 2^20 random non-members are not.
func TestSetSizeAndFalsePositives(t *testing.T) {
	r := newTestResponder(t, "phone")
	const n = 1_000_000
	members := randomOutputs(detReader(1), n)
	es, err := r.EncodeSet(1, members)
	if err != nil {
		t.Fatal(err)
	}
	b, err := es.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	perID := float64(len(b)) / n
	t.Logf("set of %d (capacity %d, padded %d): %d bytes, %.3f bytes/identifier, %.3f bytes/entry",
		n, es.Capacity, es.Entries(), len(b), perID, float64(len(b))/float64(es.Entries()))
	if perID > 5.5 {
		t.Errorf("set takes %.3f bytes per identifier; want at most 5.5", perID)
	}
	dec, err := UnmarshalEncodedSet(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dec.values, es.values) {
		t.Fatal("decoded set differs from the encoded one")
	}
	set, err := NewSet(dec)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 997 {
		if !set.Contains(members[i]) {
			t.Fatalf("member %d not found", i)
		}
	}
	fp := 0
	for _, o := range randomOutputs(detReader(2), 1<<20) {
		if set.Contains(o) {
			fp++
		}
	}
	if fp != 0 {
		t.Errorf("%d false positives in 2^20 lookups; want 0", fp)
	}
}

// TestSetDeterministic checks that replicas build identical bytes and that
// padding depends on the version.
func TestSetDeterministic(t *testing.T) {
	outs := randomOutputs(detReader(3), 500)
	a := newTestResponder(t, "phone")
	b := newTestResponder(t, "phone")
	ea, _ := a.EncodeSet(1, outs)
	eb, _ := b.EncodeSet(1, slices.Clone(outs))
	ba, _ := ea.MarshalBinary()
	bb, _ := eb.MarshalBinary()
	if !bytes.Equal(ba, bb) || ea.Digest() != eb.Digest() {
		t.Error("two replicas built different bytes")
	}
	ec, _ := a.EncodeSet(2, outs)
	if ec.Digest() == ea.Digest() {
		t.Error("versions 1 and 2 have the same bytes")
	}
	// Two versions of the same holdings share no value, so comparing them
	// does not reveal which entries are real.
	for _, v := range ec.values {
		if _, ok := slices.BinarySearch(ea.values, v); ok {
			t.Fatal("versions 1 and 2 share a value")
		}
	}
	if ea.Entries() != Padded(1024) || ea.Key() == nil || !ea.Key().Equal(a.PublicKey()) {
		t.Errorf("set has %d entries and key %v; want %d and the responder's", ea.Entries(), ea.Key(), Padded(1024))
	}
}

// TestDeltas adds identifiers after the base set and finds them through a
// delta; deltas out of order or past capacity are refused.
func TestDeltas(t *testing.T) {
	r := newTestResponder(t, "phone")
	base, err := r.Precompute(ids("phone", 0, 800))
	if err != nil {
		t.Fatal(err)
	}
	es, err := r.EncodeSet(5, base)
	if err != nil {
		t.Fatal(err)
	}
	esBytes, _ := es.MarshalBinary()
	rset := mustSet(t, r, 5, base) // the responder's own view
	added, err := r.Precompute(ids("phone", 800, 803))
	if err != nil {
		t.Fatal(err)
	}
	d1, err := r.EncodeDelta(rset, added)
	if err != nil {
		t.Fatal(err)
	}
	if d1.Version != 6 || d1.Base != 5 || d1.Count != 4 {
		t.Errorf("delta version %d base %d count %d; want 6, 5, 4", d1.Version, d1.Base, d1.Count)
	}
	if err := rset.Apply(d1); err != nil {
		t.Fatal(err)
	}
	// The querier gets the set and the delta over the wire.
	qes, err := UnmarshalEncodedSet(esBytes)
	if err != nil {
		t.Fatal(err)
	}
	qset, err := NewSet(qes)
	if err != nil {
		t.Fatal(err)
	}
	d1Bytes, _ := d1.MarshalBinary()
	qd1, err := UnmarshalDelta(d1Bytes)
	if err != nil {
		t.Fatal(err)
	}

	q := newTestQuerier(t, r, 0)
	query := ids("phone", 798, 805) // 798, 799 in base; 800-802 added; 803, 804 not held
	match := func() []int {
		qy, req, err := q.Blind(query, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := r.Evaluate(req, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		hits, err := qy.Match(ev, qset)
		if err != nil {
			t.Fatal(err)
		}
		return hits
	}
	if hits := match(); !slices.Equal(hits, []int{0, 1}) {
		t.Errorf("hits before delta = %v; want [0 1]", hits)
	}
	if err := qset.Apply(qd1); err != nil {
		t.Fatal(err)
	}
	if hits := match(); !slices.Equal(hits, []int{0, 1, 2, 3, 4}) {
		t.Errorf("hits after delta = %v; want [0 1 2 3 4]", hits)
	}
	if err := qset.Apply(qd1); !errors.Is(err, ErrSetMismatch) {
		t.Errorf("applying a delta twice: %v; want ErrSetMismatch", err)
	}
	if qset.Version() != 6 || qset.Base() != 5 || qset.Entries() != Padded(1024)+4 {
		t.Errorf("set version %d base %d entries %d", qset.Version(), qset.Base(), qset.Entries())
	}
	// Headroom is capacity/8 = 128 entries: 124 left, a 128-entry delta
	// does not fit.
	more := randomOutputs(detReader(4), 100)
	if _, err := r.EncodeDelta(rset, more); !errors.Is(err, ErrSetFull) {
		t.Errorf("EncodeDelta past capacity: %v; want ErrSetFull", err)
	}
	other := newTestResponder(t, "email")
	if _, err := other.EncodeDelta(rset, added); !errors.Is(err, ErrSetMismatch) {
		t.Errorf("EncodeDelta with another key: %v; want ErrSetMismatch", err)
	}
}

// TestDuplicatesAndDummies checks that a duplicated input hits at every
// index and that requests are padded to the bucket.
func TestDuplicatesAndDummies(t *testing.T) {
	r := newTestResponder(t, "phone")
	outs, err := r.Precompute(ids("phone", 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	set := mustSet(t, r, 1, outs)
	q := newTestQuerier(t, r, 0)
	in := [][]byte{[]byte("phone:+4915000000003"), []byte("phone:nope"), []byte("phone:+4915000000003"), []byte("phone:+4915000000009"), []byte("phone:nope")}
	qy, req, err := q.Blind(in, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if req.Len() != 4 {
		t.Errorf("request of %d elements for 3 distinct inputs; want 4", req.Len())
	}
	ev, err := r.Evaluate(req, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hits, err := qy.Match(ev, set)
	if err != nil || !slices.Equal(hits, []int{0, 2, 3}) {
		t.Errorf("Match = %v, %v; want [0 2 3]", hits, err)
	}
	if _, _, err := q.Blind([][]byte{{}}, rand.Reader); !errors.Is(err, ErrInput) {
		t.Errorf("Blind(empty input) error = %v; want ErrInput", err)
	}
	if _, _, err := q.Blind(nil, rand.Reader); !errors.Is(err, ErrInput) {
		t.Errorf("Blind(nil) error = %v; want ErrInput", err)
	}
}

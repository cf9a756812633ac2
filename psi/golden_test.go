package psi

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestGoldenTranscript pins the bytes of a whole exchange with injected
// randomness: request, evaluation, base set and delta (as SHA-256 digests),
// so that any change of format, derivation or padding shows up here.
// Regenerate with: go test ./psi -run TestGoldenTranscript -update
func TestGoldenTranscript(t *testing.T) {
	r := newTestResponder(t, "phone")
	q := newTestQuerier(t, r, 0)
	qy, req, err := q.Blind(ids("phone", 5, 12), detReader(21))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.Evaluate(req, detReader(22))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := r.Precompute(ids("phone", 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	es, err := r.EncodeSet(1, outs)
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewSet(es)
	if err != nil {
		t.Fatal(err)
	}
	added, err := r.Precompute(ids("phone", 10, 12))
	if err != nil {
		t.Fatal(err)
	}
	dl, err := r.EncodeDelta(set, added)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Apply(dl); err != nil {
		t.Fatal(err)
	}
	hits, err := qy.Match(ev, set)
	if err != nil {
		t.Fatal(err)
	}
	// The same blinded request under the victim reach's key.
	rv := newReachResponder(t, "phone", "victim")
	evv, err := rv.Evaluate(req, detReader(23))
	if err != nil {
		t.Fatal(err)
	}
	vouts, err := rv.Precompute(ids("phone", 5, 7))
	if err != nil {
		t.Fatal(err)
	}
	esv, err := rv.EncodeSet(1, vouts)
	if err != nil {
		t.Fatal(err)
	}
	vset, err := NewSet(esv)
	if err != nil {
		t.Fatal(err)
	}
	vhits, err := qy.MatchKey(rv.PublicKey(), evv, vset)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := r.PublicKey().MarshalBinary()
	vpk, _ := rv.PublicKey().MarshalBinary()
	var b strings.Builder
	fmt.Fprintf(&b, "public key %x\n", pk)
	fmt.Fprintf(&b, "victim public key %x\n", vpk)
	for _, m := range []struct {
		name string
		m    interface{ MarshalBinary() ([]byte, error) }
	}{{"request", req}, {"evaluation", ev}, {"set", es}, {"delta", dl}, {"victim evaluation", evv}, {"victim set", esv}} {
		enc, err := m.m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d bytes sha256 %x\n", m.name, len(enc), sha256.Sum256(enc))
	}
	fmt.Fprintf(&b, "hits %v\n", hits)
	fmt.Fprintf(&b, "victim hits %v\n", vhits)
	got := b.String()
	const path = "testdata/transcript.golden"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("transcript changed:\n got:\n%s\nwant:\n%s", got, want)
	}
}

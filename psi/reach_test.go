package psi

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

var testReaches = []string{"open", "victim", "witness"}

// TestReachKeys checks that each reach has its own key, and that the same
// seed, agency, kind, epoch and reach give the same key every time (every
// replica derives it alike).
func TestReachKeys(t *testing.T) {
	seen := map[string]string{}
	for _, reach := range testReaches {
		a := newReachResponder(t, "phone", reach)
		b := newReachResponder(t, "phone", reach)
		ka, _ := a.PublicKey().MarshalBinary()
		kb, _ := b.PublicKey().MarshalBinary()
		if string(ka) != string(kb) {
			t.Errorf("reach %s: two derivations give two keys", reach)
		}
		if other, ok := seen[string(ka)]; ok {
			t.Errorf("reach %s has the key of reach %s", reach, other)
		}
		seen[string(ka)] = reach
		if a.Reach() != reach {
			t.Errorf("Reach() = %q; want %q", a.Reach(), reach)
		}
	}
}

func TestReachNameRefused(t *testing.T) {
	for _, reach := range []string{"", strings.Repeat("r", MaxReachLen+1), "open|victim"} {
		_, err := NewResponder(ResponderConfig{Seed: testSeed(7), Agency: "DE", Kind: "phone", Epoch: 3, Reach: reach})
		if !errors.Is(err, ErrKey) {
			t.Errorf("NewResponder(reach %q) = %v; want ErrKey", reach, err)
		}
	}
}

// TestOneBlindingThreeReaches blinds once, has the batch evaluated under
// the key of each reach, and matches each evaluation against that reach's
// set: each reach hits exactly the inputs its set holds.
func TestOneBlindingThreeReaches(t *testing.T) {
	held := map[string][2]int{"open": {0, 4}, "victim": {4, 6}, "witness": {6, 7}}
	q, err := NewQuerier(QuerierConfig{Kind: "phone", Epoch: 3, Dummy: dummy})
	if err != nil {
		t.Fatal(err)
	}
	// inputs 0..9: 0-3 open, 4-5 victim, 6 witness, 7-9 held by nobody.
	qy, req, err := q.Blind(ids("phone", 0, 10), detReader(1))
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string][][]byte{}
	for i, reach := range testReaches {
		r := newReachResponder(t, "phone", reach)
		rng := held[reach]
		outs, err := r.Precompute(ids("phone", rng[0], rng[1]))
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
		if set.Reach() != reach {
			t.Errorf("set reach %q; want %q", set.Reach(), reach)
		}
		ev, err := r.Evaluate(req, detReader(uint64(10+i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyEvaluation(r.PublicKey(), req, ev); err != nil {
			t.Fatalf("VerifyEvaluation(%s): %v", reach, err)
		}
		hits, err := qy.MatchKey(r.PublicKey(), ev, set)
		if err != nil {
			t.Fatalf("MatchKey(%s): %v", reach, err)
		}
		var want []int
		for j := rng[0]; j < rng[1]; j++ {
			want = append(want, j)
		}
		if !slices.Equal(hits, want) {
			t.Errorf("reach %s hits %v; want %v", reach, hits, want)
		}
		if outputs[reach], err = qy.FinalizeKey(r.PublicKey(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if slices.EqualFunc(outputs["open"], outputs["victim"], func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Error("open and victim outputs are equal")
	}
}

// TestWrongReachKeyRefused: an evaluation under the victim key checked
// against the pinned open key fails, with or without an earlier check
// against the victim key; so does a set of another reach's key.
func TestWrongReachKeyRefused(t *testing.T) {
	open := newReachResponder(t, "phone", "open")
	victim := newReachResponder(t, "phone", "victim")
	q, err := NewQuerier(QuerierConfig{Kind: "phone", Epoch: 3, Dummy: dummy})
	if err != nil {
		t.Fatal(err)
	}
	qy, req, err := q.Blind(ids("phone", 0, 3), detReader(2))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := victim.Evaluate(req, detReader(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyEvaluation(open.PublicKey(), req, ev); !errors.Is(err, ErrProof) {
		t.Errorf("VerifyEvaluation(open key, victim evaluation) = %v; want ErrProof", err)
	}
	if err := VerifyEvaluation(victim.PublicKey(), req, ev); err != nil {
		t.Fatalf("VerifyEvaluation(victim key): %v", err)
	}
	if _, err := qy.FinalizeKey(open.PublicKey(), ev); !errors.Is(err, ErrProof) {
		t.Errorf("FinalizeKey(open key) after a victim check = %v; want ErrProof", err)
	}
	outs, err := victim.Precompute(ids("phone", 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	es, err := victim.EncodeSet(1, outs)
	if err != nil {
		t.Fatal(err)
	}
	vset, err := NewSet(es)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qy.MatchKey(open.PublicKey(), ev, vset); !errors.Is(err, ErrSetMismatch) {
		t.Errorf("MatchKey(open key, victim set) = %v; want ErrSetMismatch", err)
	}
	if _, err := qy.Match(ev, vset); !errors.Is(err, ErrKey) {
		t.Errorf("Match without a configured key = %v; want ErrKey", err)
	}
}

// TestReachPaddingApart: two reaches' sets of one epoch share no padding
// value (values are compared in the same base version and capacity), so a
// partner holding both cannot tell padding from holdings by intersecting.
func TestReachPaddingApart(t *testing.T) {
	a := newReachResponder(t, "phone", "open")
	b := newReachResponder(t, "phone", "victim")
	oa, err := a.Precompute(ids("phone", 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	ob, err := b.Precompute(ids("phone", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	sa, err := a.EncodeSet(1, oa)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.EncodeSet(1, ob)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Capacity != sb.Capacity {
		t.Fatalf("capacities %d and %d differ", sa.Capacity, sb.Capacity)
	}
	common := 0
	for _, v := range sa.values {
		if _, ok := slices.BinarySearch(sb.values, v); ok {
			common++
		}
	}
	if common != 0 {
		t.Errorf("%d values shared by the open and victim sets", common)
	}
}

package psi

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"testing"

	"github.com/cloudflare/circl/group"
)

// TestCheatingResponder checks that every tampering with an evaluation is
// caught before any lookup: no hits come back.
func TestCheatingResponder(t *testing.T) {
	r := newTestResponder(t, "phone")
	other, err := NewResponder(ResponderConfig{Seed: testSeed(8), Agency: "DE", Kind: "phone", Epoch: 3, Reach: "open"})
	if err != nil {
		t.Fatal(err)
	}
	holdings := ids("phone", 0, 200)
	outs, err := r.Precompute(holdings)
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
	q := newTestQuerier(t, r, MinChunk)
	query := ids("phone", 100, 300) // 100 hits, padded to 256: 4 chunks
	qy, req, err := q.Blind(query, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	honest, err := r.Evaluate(req, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Evaluate(req, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hits, err := qy.Match(honest, set)
	if err != nil || len(hits) != 100 {
		t.Fatalf("honest Match = %d hits, %v; want 100, nil", len(hits), err)
	}
	copyEv := func(ev *Evaluation) *Evaluation {
		return &Evaluation{ChunkSize: ev.ChunkSize, elements: slices.Clone(ev.elements), proofs: slices.Clone(ev.proofs)}
	}
	honestBytes, err := honest.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tamper func() (*Evaluation, error) // the evaluation as the querier decodes it
		want   error
	}{
		{"other key for one chunk", func() (*Evaluation, error) {
			ev := copyEv(honest)
			copy(ev.elements[64:128], forged.elements[64:128])
			ev.proofs[1] = forged.proofs[1]
			return ev, nil
		}, ErrProof},
		{"other key, honest proof", func() (*Evaluation, error) {
			ev := copyEv(honest)
			ev.elements[70] = forged.elements[70]
			return ev, nil
		}, ErrProof},
		{"swapped elements", func() (*Evaluation, error) {
			ev := copyEv(honest)
			ev.elements[3], ev.elements[4] = ev.elements[4], ev.elements[3]
			return ev, nil
		}, ErrProof},
		{"swapped proofs", func() (*Evaluation, error) {
			ev := copyEv(honest)
			ev.proofs[0], ev.proofs[2] = ev.proofs[2], ev.proofs[0]
			return ev, nil
		}, ErrProof},
		{"identity element in memory", func() (*Evaluation, error) {
			ev := copyEv(honest)
			ev.elements[5] = g.Identity()
			return ev, nil
		}, ErrProof},
		{"identity element on the wire", func() (*Evaluation, error) {
			b := bytes.Clone(honestBytes)
			clear(b[10+5*elementSize : 10+6*elementSize])
			return UnmarshalEvaluation(b)
		}, ErrMalformed},
		{"truncated proof", func() (*Evaluation, error) {
			return UnmarshalEvaluation(honestBytes[:len(honestBytes)-1])
		}, ErrMalformed},
		{"missing proof", func() (*Evaluation, error) {
			ev := copyEv(honest)
			ev.proofs = ev.proofs[:3]
			return ev, nil
		}, ErrProof},
		{"zero proof", func() (*Evaluation, error) {
			ev := copyEv(honest)
			ev.proofs[3] = [proofSize]byte{}
			return ev, nil
		}, ErrProof},
		{"fewer elements", func() (*Evaluation, error) {
			ev := copyEv(honest)
			ev.elements = ev.elements[:255]
			return ev, nil
		}, ErrProof},
		{"whole answer under another key", func() (*Evaluation, error) {
			return copyEv(forged), nil
		}, ErrProof},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := tc.tamper()
			if err == nil {
				var hits []int
				hits, err = qy.Match(ev, set)
				if hits != nil {
					t.Errorf("Match returned %d hits with error %v; want none", len(hits), err)
				}
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error = %v; want %v", err, tc.want)
			}
		})
	}
}

// TestResponderRejects checks requests the responder must refuse.
func TestResponderRejects(t *testing.T) {
	r := newTestResponder(t, "phone")
	q := newTestQuerier(t, r, 0)
	_, req, err := q.Blind(ids("phone", 0, 3), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	reqBytes, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(*EvalRequest) *EvalRequest
	}{
		{"other kind", func(r *EvalRequest) *EvalRequest { r.Kind = "email"; return r }},
		{"other epoch", func(r *EvalRequest) *EvalRequest { r.Epoch++; return r }},
		{"identity element", func(r *EvalRequest) *EvalRequest { r.elements[1] = g.Identity(); return r }},
		{"chunk too large", func(r *EvalRequest) *EvalRequest { r.ChunkSize = MaxChunk + 1; return r }},
		{"no elements", func(r *EvalRequest) *EvalRequest { r.elements = []group.Element{}; return r }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := UnmarshalEvalRequest(reqBytes)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := r.Evaluate(tc.mod(c), rand.Reader)
			if !errors.Is(err, ErrRequest) || ev != nil {
				t.Errorf("Evaluate = %v, %v; want nil, ErrRequest", ev, err)
			}
		})
	}
}

// TestKindSeparation declares a query as phone but blinds canonical email
// values: the phone key answers, so nothing matches the email holdings.
func TestKindSeparation(t *testing.T) {
	phone := newTestResponder(t, "phone")
	email := newTestResponder(t, "email")
	if phone.PublicKey().Equal(email.PublicKey()) {
		t.Fatal("phone and email keys are equal")
	}
	held := ids("email", 0, 100)
	emailOuts, err := email.Precompute(held)
	if err != nil {
		t.Fatal(err)
	}
	emailSet := mustSet(t, email, 1, emailOuts)
	phoneOuts, err := phone.Precompute(ids("phone", 0, 100))
	if err != nil {
		t.Fatal(err)
	}
	phoneSet := mustSet(t, phone, 1, phoneOuts)

	q := newTestQuerier(t, phone, 0)
	qy, req, err := q.Blind(held, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := phone.Evaluate(req, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := qy.Finalize(ev)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if emailSet.Contains(o) {
			t.Errorf("email %d evaluated under the phone key is in the email set", i)
		}
	}
	hits, err := qy.Match(ev, phoneSet)
	if err != nil || len(hits) != 0 {
		t.Errorf("Match(phone set) = %v, %v; want no hits", hits, err)
	}
	if _, err := qy.Match(ev, emailSet); !errors.Is(err, ErrSetMismatch) {
		t.Errorf("Match(email set) error = %v; want ErrSetMismatch", err)
	}
	// The email responder refuses the phone-declared request outright.
	if _, err := email.Evaluate(req, rand.Reader); !errors.Is(err, ErrRequest) {
		t.Errorf("email.Evaluate(phone request) error = %v; want ErrRequest", err)
	}
}

func mustSet(t testing.TB, r *Responder, version uint32, outs [][]byte) *Set {
	t.Helper()
	es, err := r.EncodeSet(version, outs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSet(es)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

package psi

import (
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/zk/dleq"
)

func TestMSM(t *testing.T) {
	rnd := detReader(31)
	for _, n := range []int{1, 2, 15, 16, 70, 300, 1100} {
		pts := make([]group.Element, n)
		ks := make([][32]byte, n)
		want := g.Identity()
		for i := range n {
			k, err := randomScalar(rnd)
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				k = g.NewScalar() // a zero scalar
			}
			pts[i] = g.NewElement().MulGen(g.HashToScalar([]byte{byte(i), byte(i >> 8)}, []byte("test")))
			b, _ := k.MarshalBinary()
			copy(ks[i][:], b)
			want.Add(want, g.NewElement().Mul(pts[i], k))
		}
		if got := msm(pts, ks); !got.IsEqual(want) {
			t.Errorf("msm of %d points differs from the sum of products", n)
		}
	}
}

// TestVerifyChunkMatchesCircl holds verifyChunk to circl's
// VerifyBatchRFC9497 on honest and tampered proofs.
func TestVerifyChunkMatchesCircl(t *testing.T) {
	r := newTestResponder(t, "phone")
	other := newTestResponder(t, "email")
	q := newTestQuerier(t, r, 0)
	_, req, err := q.Blind(ids("phone", 0, 100), detReader(32))
	if err != nil {
		t.Fatal(err)
	}
	req.ChunkSize = req.Len()
	ev, err := r.Evaluate(req, detReader(33))
	if err != nil {
		t.Fatal(err)
	}
	evOther, err := other.Evaluate(&EvalRequest{Kind: "email", Epoch: 3, ChunkSize: req.Len(), elements: req.elements}, detReader(34))
	if err != nil {
		t.Fatal(err)
	}
	p := dleqParams()
	pkBytes, _ := r.PublicKey().MarshalBinary()
	swapped := append([]group.Element(nil), ev.elements...)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	flipped := ev.proofs[0]
	flipped[40] ^= 1
	tests := []struct {
		name      string
		evaluated []group.Element
		proof     [proofSize]byte
		want      bool
	}{
		{"honest", ev.elements, ev.proofs[0], true},
		{"other key", evOther.elements, evOther.proofs[0], false},
		{"other proof", ev.elements, evOther.proofs[0], false},
		{"swapped", swapped, ev.proofs[0], false},
		{"zero proof", ev.elements, [proofSize]byte{}, false},
		{"flipped bit in s", ev.elements, flipped, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cp dleq.Proof
			if err := cp.UnmarshalBinary(g, tc.proof[:]); err != nil {
				t.Fatal(err)
			}
			circl := dleq.Verifier{Params: p}.VerifyBatchRFC9497(r.PublicKey().e, req.elements, tc.evaluated, &cp)
			ours := verifyChunk(p, r.PublicKey().e, pkBytes, req.elements, tc.evaluated, &tc.proof)
			if ours != tc.want || circl != tc.want {
				t.Errorf("verifyChunk = %v, circl = %v; want %v", ours, circl, tc.want)
			}
		})
	}
}

func BenchmarkVerifyChunk(b *testing.B) {
	r := newTestResponder(b, "phone")
	q := newTestQuerier(b, r, 0)
	_, req, err := q.Blind(ids("phone", 0, 1000), detReader(35)) // padded to 1,024: one chunk of MaxChunk
	if err != nil {
		b.Fatal(err)
	}
	req.ChunkSize = req.Len()
	ev, err := r.Evaluate(req, detReader(36))
	if err != nil {
		b.Fatal(err)
	}
	p := dleqParams()
	pkBytes, _ := r.PublicKey().MarshalBinary()
	b.Run("psi", func(b *testing.B) {
		for b.Loop() {
			if !verifyChunk(p, r.PublicKey().e, pkBytes, req.elements, ev.elements, &ev.proofs[0]) {
				b.Fatal("proof rejected")
			}
		}
	})
	var cp dleq.Proof
	if err := cp.UnmarshalBinary(g, ev.proofs[0][:]); err != nil {
		b.Fatal(err)
	}
	b.Run("circl", func(b *testing.B) {
		for b.Loop() {
			if !(dleq.Verifier{Params: p}).VerifyBatchRFC9497(r.PublicKey().e, req.elements, ev.elements, &cp) {
				b.Fatal("proof rejected")
			}
		}
	})
}

package psi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/cloudflare/circl/group"
)

// hexList decodes the vectors' comma-separated hex lists.
type hexList [][]byte

func (h *hexList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, part := range strings.Split(s, ",") {
		v, err := hex.DecodeString(part)
		if err != nil {
			return err
		}
		*h = append(*h, v)
	}
	return nil
}

type rfcVector struct {
	Identifier string  `json:"identifier"`
	Mode       int     `json:"mode"`
	PkSm       hexList `json:"pkSm"`
	SkSm       hexList `json:"skSm"`
	Seed       hexList `json:"seed"`
	KeyInfo    hexList `json:"keyInfo"`
	Vectors    []struct {
		Batch             int     `json:"Batch"`
		Blind             hexList `json:"Blind"`
		BlindedElement    hexList `json:"BlindedElement"`
		EvaluationElement hexList `json:"EvaluationElement"`
		Input             hexList `json:"Input"`
		Output            hexList `json:"Output"`
		Proof             struct {
			Proof hexList `json:"proof"`
			R     hexList `json:"r"`
		} `json:"Proof"`
	} `json:"vectors"`
}

func scalarFrom(t *testing.T, b []byte) group.Scalar {
	t.Helper()
	s := g.NewScalar()
	if err := s.UnmarshalBinary(b); err != nil {
		t.Fatalf("scalar %x: %v", b, err)
	}
	return s
}

// TestRFC9497Vectors reproduces the RFC 9497 VOPRF ristretto255-SHA512 test
// vectors (copied from circl's testdata) through this package's own key
// derivation, blinding, evaluation, proof, wire encoding and finalisation.
func TestRFC9497Vectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/rfc9497-voprf-ristretto255-sha512.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []rfcVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Identifier != SuiteName || vs[0].Mode != 1 || len(vs[0].Vectors) != 3 {
		t.Fatalf("testdata holds %d suites; want the 3 VOPRF %s vectors", len(vs), SuiteName)
	}
	v := vs[0]
	sk, err := deriveKey(v.Seed[0], v.KeyInfo[0])
	if err != nil {
		t.Fatal(err)
	}
	r, err := newResponder(sk, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := sk.MarshalBinary(); !bytes.Equal(got, v.SkSm[0]) {
		t.Errorf("skSm = %x; want %x", got, v.SkSm[0])
	}
	if got, _ := r.PublicKey().MarshalBinary(); !bytes.Equal(got, v.PkSm[0]) {
		t.Errorf("pkSm = %x; want %x", got, v.PkSm[0])
	}
	q, err := NewQuerier(QuerierConfig{Key: r.PublicKey(), Kind: "vector", Dummy: dummy})
	if err != nil {
		t.Fatal(err)
	}
	for i, tv := range v.Vectors {
		qy := &Query{q: q, inputs: tv.Input, ncaller: len(tv.Input)}
		for j := range tv.Input {
			qy.where = append(qy.where, []int{j})
		}
		var blinds []group.Scalar
		for _, b := range tv.Blind {
			blinds = append(blinds, scalarFrom(t, b))
		}
		req, err := qy.blind(blinds)
		if err != nil {
			t.Fatalf("vector %d: blind: %v", i, err)
		}
		if req.ChunkSize != tv.Batch {
			t.Fatalf("vector %d: chunk size %d; want one proof over %d", i, req.ChunkSize, tv.Batch)
		}
		// Through the wire encoding in both directions.
		reqBytes, err := req.MarshalBinary()
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if got, want := reqBytes[len(reqBytes)-elementSize*tv.Batch:], bytes.Join(tv.BlindedElement, nil); !bytes.Equal(got, want) {
			t.Errorf("vector %d: blinded = %x; want %x", i, got, want)
		}
		req2, err := UnmarshalEvalRequest(reqBytes)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		ev, err := r.evaluate(req2, []group.Scalar{scalarFrom(t, tv.Proof.R[0])})
		if err != nil {
			t.Fatalf("vector %d: evaluate: %v", i, err)
		}
		evBytes, err := ev.MarshalBinary()
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		want := append(bytes.Join(tv.EvaluationElement, nil), tv.Proof.Proof[0]...)
		if got := evBytes[len(evBytes)-len(want):]; !bytes.Equal(got, want) {
			t.Errorf("vector %d: evaluated ‖ proof = %x; want %x", i, got, want)
		}
		ev2, err := UnmarshalEvaluation(evBytes)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		outs, err := qy.Finalize(ev2)
		if err != nil {
			t.Fatalf("vector %d: finalize: %v", i, err)
		}
		for j := range outs {
			if !bytes.Equal(outs[j], tv.Output[j]) {
				t.Errorf("vector %d: output %d = %x; want %x", i, j, outs[j], tv.Output[j])
			}
		}
		pre, err := r.Precompute(tv.Input)
		if err != nil {
			t.Fatalf("vector %d: precompute: %v", i, err)
		}
		for j := range pre {
			if !bytes.Equal(pre[j], tv.Output[j]) {
				t.Errorf("vector %d: precomputed output %d = %x; want %x", i, j, pre[j], tv.Output[j])
			}
		}
	}
}

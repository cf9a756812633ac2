package exchange

import (
	"bytes"
	"context"
	"testing"
)

// FuzzParseAddCheckpoint: what parses marshals back to the same bytes
// (the encoding is canonical), and nothing panics.
func FuzzParseAddCheckpoint(f *testing.F) {
	tr, _ := newTree(f, "DE", keyDE)
	tr.add("a", 5)
	f.Add(tr.add1(0).Marshal())
	tr.add("a", 3)
	f.Add(tr.add1(5).Marshal())
	f.Add([]byte("old 0\n\n"))
	f.Add([]byte("old 01\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseAddCheckpoint(b)
		if err != nil {
			return
		}
		if len(r.Proof) > MaxProofLines {
			t.Fatalf("%d proof lines parsed", len(r.Proof))
		}
		if got := r.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Marshal(Parse(%q)) = %q", b, got)
		}
	})
}

// FuzzParseWitnessAnswer: an answer that parses marshals back to itself;
// a conflict size, when read, is canonical.
func FuzzParseWitnessAnswer(f *testing.F) {
	f.Add([]byte("200\n— xborder.witness/FR AAAA\n"))
	f.Add([]byte("409\n12\n"))
	f.Add([]byte("409\n012\n"))
	f.Add([]byte("422\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseWitnessAnswer(b)
		if err != nil {
			return
		}
		if got := a.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Marshal(Parse(%q)) = %q", b, got)
		}
		_, _ = a.ConflictSize()
	})
}

// FuzzWitnessAnswer drives a witness that has cosigned a checkpoint of 5
// with arbitrary requests: it never panics, answers with a defined
// status, and its state only ever moves to a checkpoint of DE's key that
// extends the one it held.
func FuzzWitnessAnswer(f *testing.F) {
	w, st, tr, _ := newTestWitness(f)
	tr.add("a", 5)
	first := tr.add1(0)
	if a := w.AddCheckpoint(context.Background(), peerDE, first); a.Status != WitnessOK {
		f.Fatalf("seed cosign: %d", a.Status)
	}
	tr.add("a", 2)
	f.Add(tr.add1(5).Marshal())
	fork := tr.clone(4)
	fork.add("forged", 1)
	f.Add(fork.add1(5).Marshal())
	f.Add([]byte("latest " + tr.origin + "\n"))
	f.Add([]byte("old 5\n\n" + string(first.Checkpoint)))
	f.Fuzz(func(t *testing.T, b []byte) {
		st.mu.Lock()
		st.notes[tr.origin] = first.Checkpoint
		st.mu.Unlock()
		a := w.Answer(context.Background(), peerDE, b)
		switch a.Status {
		case WitnessOK, WitnessBadRequest, WitnessForbidden, WitnessUnknownLog, WitnessConflict, WitnessUnprocessable:
		default:
			t.Fatalf("status %d", a.Status)
		}
		now := st.notes[tr.origin]
		if bytes.Equal(now, first.Checkpoint) {
			return
		}
		cp, _, err := w.open(now)
		if err != nil || cp.size < 5 {
			t.Fatalf("state moved to %q (%v)", now, err)
		}
	})
}

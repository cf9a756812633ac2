package psi

import (
	"bytes"
	"testing"
)

// fuzzSeeds returns valid encodings of every message for the seed corpora.
func fuzzSeeds(t testing.TB) (req, ev, set, delta []byte) {
	r := newTestResponder(t, "phone")
	q := newTestQuerier(t, r, 0)
	_, er, err := q.Blind(ids("phone", 0, 3), detReader(5))
	if err != nil {
		t.Fatal(err)
	}
	evl, err := r.Evaluate(er, detReader(6))
	if err != nil {
		t.Fatal(err)
	}
	outs := randomOutputs(detReader(7), 20)
	es, err := r.EncodeSet(1, outs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSet(es)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := r.EncodeDelta(s, outs[:3])
	if err != nil {
		t.Fatal(err)
	}
	req, _ = er.MarshalBinary()
	ev, _ = evl.MarshalBinary()
	set, _ = es.MarshalBinary()
	delta, _ = dl.MarshalBinary()
	return req, ev, set, delta
}

// addSeeds adds a valid encoding and a few broken variants.
func addSeeds(f *testing.F, b []byte) {
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add(append(bytes.Clone(b), 0))
	f.Add([]byte{})
	f.Add([]byte{wireVersion, suiteVOPRFRistretto255})
	for _, i := range []int{0, 1, 2, 10, 20, len(b) / 2} {
		if i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			f.Add(c)
		}
	}
}

// roundTrip checks that a decoded message re-encodes to the same bytes.
func roundTrip(t *testing.T, in []byte, m interface{ MarshalBinary() ([]byte, error) }) {
	out, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	if !bytes.Equal(in, out) {
		t.Fatalf("round trip changed the bytes:\n in %x\nout %x", in, out)
	}
}

func FuzzEvalRequest(f *testing.F) {
	req, _, _, _ := fuzzSeeds(f)
	addSeeds(f, req)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalEvalRequest(b)
		if err != nil {
			return
		}
		roundTrip(t, b, r)
	})
}

func FuzzEvaluation(f *testing.F) {
	_, ev, _, _ := fuzzSeeds(f)
	addSeeds(f, ev)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnmarshalEvaluation(b)
		if err != nil {
			return
		}
		roundTrip(t, b, e)
	})
}

func FuzzEncodedSet(f *testing.F) {
	_, _, set, _ := fuzzSeeds(f)
	addSeeds(f, set)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalEncodedSet(b)
		if err != nil {
			return
		}
		roundTrip(t, b, s)
		ns, err := NewSet(s)
		if err != nil {
			t.Fatal(err)
		}
		ns.Contains(b)
	})
}

func FuzzDelta(f *testing.F) {
	_, _, _, delta := fuzzSeeds(f)
	addSeeds(f, delta)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := UnmarshalDelta(b)
		if err != nil {
			return
		}
		roundTrip(t, b, d)
	})
}

func FuzzPublicKey(f *testing.F) {
	r := newTestResponder(f, "phone")
	k, _ := r.PublicKey().MarshalBinary()
	addSeeds(f, k)
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := ParsePublicKey(b)
		if err != nil {
			return
		}
		roundTrip(t, b, pk)
	})
}

// TestDecodersRejectBroken checks that the broken seed variants are
// refused (the fuzz targets only check what decodes).
func TestDecodersRejectBroken(t *testing.T) {
	req, ev, set, delta := fuzzSeeds(t)
	decoders := []struct {
		name string
		b    []byte
		dec  func([]byte) error
	}{
		{"request", req, func(b []byte) error { _, err := UnmarshalEvalRequest(b); return err }},
		{"evaluation", ev, func(b []byte) error { _, err := UnmarshalEvaluation(b); return err }},
		{"set", set, func(b []byte) error { _, err := UnmarshalEncodedSet(b); return err }},
		{"delta", delta, func(b []byte) error { _, err := UnmarshalDelta(b); return err }},
	}
	for _, d := range decoders {
		t.Run(d.name, func(t *testing.T) {
			if err := d.dec(d.b); err != nil {
				t.Fatalf("valid %s: %v", d.name, err)
			}
			for name, b := range map[string][]byte{
				"truncated": d.b[:len(d.b)-1],
				"trailing":  append(bytes.Clone(d.b), 0),
				"version":   append([]byte{wireVersion + 1}, d.b[1:]...),
				"version 1": append([]byte{1}, d.b[1:]...),
				"suite":     append([]byte{wireVersion, 2}, d.b[2:]...),
				"empty":     nil,
			} {
				if err := d.dec(b); err == nil {
					t.Errorf("%s %s decoded without error", name, d.name)
				}
			}
		})
	}
}

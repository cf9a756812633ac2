package card

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

// TestWitnessKey: a card with a witness key round-trips in both forms with
// the key, one without has none, and a re-pin may add or change it.
func TestWitnessKey(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	wit := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	now := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	mk := func(seq uint64, w ed25519.PublicKey) *Card {
		c := &Card{Agency: "FR", Name: "OCRTEH", Witness: w, Issued: now, Expires: now.Add(24 * time.Hour), Sequence: seq,
			Replicas: []Replica{{PeerID: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", Addrs: []string{"/ip4/198.51.100.7/tcp/4001"}}}}
		if err := c.Sign(priv); err != nil {
			t.Fatalf("Sign: %v", err)
		}
		return c
	}
	old, next := mk(1, nil), mk(2, wit)
	if old.Version != Version || next.Version != Version {
		t.Fatalf("versions %d, %d; want %d", old.Version, next.Version, Version)
	}
	ob, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Decode(ob); err != nil || d.Witness != nil {
		t.Fatalf("Decode of a card without a witness key = %+v, %v; want no witness key", d, err)
	}
	bin, err := next.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(bin)
	if err != nil || d.Verify(now) != nil || !bytes.Equal(d.Witness, wit) {
		t.Fatalf("Decode = %+v, %v; want the witness key back", d, err)
	}
	txt, err := next.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(txt)
	if err != nil || p.Verify(now) != nil || !bytes.Equal(p.Witness, wit) {
		t.Fatalf("Parse = %+v, %v; want the witness key back", p, err)
	}
	if err := Replaces(old, next); err != nil {
		t.Fatalf("Replaces(v1, v2 with witness) = %v", err)
	}
	// The signature covers the witness key.
	bad := *d
	bad.Witness = append(ed25519.PublicKey(nil), wit...)
	bad.Witness[0] ^= 1
	if err := bad.Verify(now); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify with another witness key = %v; want ErrSignature", err)
	}
	same := &Card{Agency: "FR", Name: "OCRTEH", Witness: priv.Public().(ed25519.PublicKey), Issued: now, Expires: now.Add(time.Hour),
		Sequence: 3, Replicas: old.Replicas}
	if err := same.Sign(priv); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Sign with the agency key as witness key = %v; want ErrInvalid", err)
	}
}

// witnessCard is testCard with a witness key, in both forms:
// a seed of the fuzz targets.
func witnessCard(t testing.TB) struct{ bin, text []byte } {
	c := testCard(t)
	c.Witness = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	if err := c.Sign(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	bin, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	text, err := c.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return struct{ bin, text []byte }{bin, text}
}

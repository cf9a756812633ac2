package card

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestGolden pins the text form, and through its signature the binary body,
// of a card signed with a fixed key: Ed25519 is deterministic, so any change
// to either encoding shows here. Regenerate with go test -update only when
// the format version changes.
func TestGolden(t *testing.T) {
	c := &Card{
		Version: Version,
		Agency:  "FR",
		Name:    "OCRTEH",
		Replicas: []Replica{{
			PeerID: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo",
			Addrs:  []string{"/ip4/198.51.100.7/tcp/4001"},
		}},
		EpochKeys: []EpochKey{
			{Epoch: 1, Kind: "phone", Reach: "open", Key: bytes.Repeat([]byte{0x5a}, 32)},
			{Epoch: 1, Kind: "phone", Reach: "victim", Key: bytes.Repeat([]byte{0x5b}, 32)},
		},
		Witness:  ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize)).Public().(ed25519.PublicKey),
		Issued:   time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC),
		Expires:  time.Date(2027, 2, 25, 2, 0, 0, 0, time.UTC),
		Sequence: 1,
	}
	if err := c.Sign(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	got, err := c.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	path := filepath.Join("testdata", "card.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (run go test -update to create it): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("text form differs from %s:\n%s", path, got)
	}
	parsed, err := Parse(want)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	if err := parsed.Verify(c.Issued); err != nil {
		t.Fatalf("Verify(%s): %v", path, err)
	}
	if fp := parsed.Fingerprint(); fp != "2EHR-HITH-MGT3-WGBF-EHZT-HXAR" {
		t.Errorf("Fingerprint = %s; want 2EHR-HITH-MGT3-WGBF-EHZT-HXAR", fp)
	}
}

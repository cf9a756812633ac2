package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
)

// onePin is the pin of one agency, re-pinned by PinCard.
type onePin struct {
	c      *card.Card
	repins int
}

func (p *onePin) pinned(agency string) (*card.Card, bool) {
	return p.c, p.c != nil && p.c.Agency == agency
}

func (p *onePin) PinCard(ctx context.Context, actor string, c *card.Card, fingerprint string) (httpapi.Partner, error) {
	p.c = c
	p.repins++
	return httpapi.Partner{}, nil
}

// TestCardCheckOtherReplica: every replica of an agency signs the agency's
// card itself, with a sequence from its own clock, so two replicas serve
// cards with different sequences. A partner that syncs from the replica
// whose card is older than its pin (its first replica cut off, say) uses
// the pinned card's epoch keys, without re-pinning, instead of refusing
// the sync; a newer card replaces the pin; a card of another key never
// counts.
func TestCardCheckOtherReplica(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	key := newKey(t)
	mk := func(seq uint64, epochKey byte, signer ed25519.PrivateKey) []byte {
		t.Helper()
		c := &card.Card{Version: card.Version, Agency: "DE", Name: "Agency DE", Sequence: seq,
			Issued: now.Add(-time.Hour), Expires: now.Add(24 * time.Hour),
			Replicas:  []card.Replica{{PeerID: "12D3KooWA", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}},
			EpochKeys: []card.EpochKey{{Epoch: 1, Kind: "phone", Reach: "open", Key: bytes.Repeat([]byte{epochKey}, 32)}}}
		if err := c.Sign(signer); err != nil {
			t.Fatal(err)
		}
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pinnedBytes := mk(100, 1, key)
	pinned, err := card.Decode(pinnedBytes)
	if err != nil {
		t.Fatal(err)
	}
	pins := &onePin{c: pinned}
	cc := newCardChecker(pins, func() time.Time { return now })

	keyOf := func(what string, b []byte) byte {
		t.Helper()
		ks, err := cc.Check(ctx, "DE", b)
		if err != nil {
			t.Fatalf("%s: Check = %v; want accepted", what, err)
		}
		if len(ks) != 1 {
			t.Fatalf("%s: %d epoch keys; want 1", what, len(ks))
		}
		return ks[0].Key[0]
	}
	if k := keyOf("the pinned card", pinnedBytes); k != 1 || pins.repins != 0 {
		t.Errorf("the pinned card: epoch key %d, %d re-pins; want 1, 0", k, pins.repins)
	}
	if k := keyOf("another replica's older card", mk(90, 9, key)); k != 1 || pins.repins != 0 || pins.c.Sequence != 100 {
		t.Errorf("an older card: epoch key %d, %d re-pins, pin sequence %d; want the pin's key 1, no re-pin, 100", k, pins.repins, pins.c.Sequence)
	}
	if k := keyOf("a newer card", mk(110, 2, key)); k != 2 || pins.repins != 1 || pins.c.Sequence != 110 {
		t.Errorf("a newer card: epoch key %d, %d re-pins, pin sequence %d; want 2, 1, 110", k, pins.repins, pins.c.Sequence)
	}
	for _, b := range [][]byte{mk(90, 9, newKey(t)), mk(120, 9, newKey(t))} {
		if _, err := cc.Check(ctx, "DE", b); err == nil {
			t.Errorf("a card of DE signed by another key was accepted")
		}
	}
}

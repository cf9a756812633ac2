package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
)

// racedPin is a pin that another sync replaces with a given card between
// the checker's read of the pin and its PinCard, as the ledger's pins do
// when two syncs of a partner (two kinds) bring its new card at once.
type racedPin struct {
	c, winner *card.Card
}

func (p *racedPin) pinned(agency string) (*card.Card, bool) {
	return p.c, p.c != nil && p.c.Agency == agency
}

func (p *racedPin) PinCard(ctx context.Context, actor string, c *card.Card, fingerprint string) (httpapi.Partner, error) {
	p.c = p.winner // the other sync's pin lands first
	if err := card.Replaces(p.c, c); err != nil {
		return httpapi.Partner{}, fmt.Errorf("pin partner: %w: %w", httpapi.ErrConflict, err)
	}
	p.c = c
	return httpapi.Partner{}, nil
}

// TestCardCheckRacedPin: a sync whose newer card another sync pinned first
// (testnet chaos: "re-pin card of DE: … card is not newer than the pinned
// card", and the query part denied unknown_epoch) uses the pin in force,
// as new as its card, instead of failing.
func TestCardCheckRacedPin(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	key := newKey(t)
	mk := func(seq uint64, epochKey byte) *card.Card {
		t.Helper()
		c := &card.Card{Version: card.Version, Agency: "DE", Name: "Agency DE", Sequence: seq,
			Issued: now.Add(-time.Hour), Expires: now.Add(24 * time.Hour),
			Replicas:  []card.Replica{{PeerID: "12D3KooWA", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}},
			EpochKeys: []card.EpochKey{{Epoch: 2, Kind: "phone", Reach: "open", Key: bytes.Repeat([]byte{epochKey}, 32)}}}
		if err := c.Sign(key); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name    string
		winner  *card.Card
		wantKey byte // 0: refused
	}{
		{"the same card pinned first", mk(110, 2), 2},
		{"a newer card pinned first", mk(111, 3), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pins := &racedPin{c: mk(100, 1), winner: tc.winner}
			b, err := mk(110, 2).Encode()
			if err != nil {
				t.Fatal(err)
			}
			ks, err := newCardChecker(pins, func() time.Time { return now }).Check(context.Background(), "DE", b)
			if err != nil || len(ks) != 1 || ks[0].Key[0] != tc.wantKey {
				t.Fatalf("Check of a card another sync pinned first = %v, %v; want the pin in force's key %d", ks, err, tc.wantKey)
			}
		})
	}
}

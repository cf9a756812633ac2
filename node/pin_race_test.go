package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// TestPinsOfOnePartnerAtOnce: two pins of one partner at once (two syncs,
// a sync and an admin's re-pin) never record a card older than the one
// pinned before: the partner entries' card sequences (Count) strictly
// increase, and the pin in force is the newest card (docs/RELIABILITY.md,
// defect 15: the chaos suite found a partner entry pinning a card older
// than the entry before, as the older pin's check had read the pin before
// the newer one was written).
func TestPinsOfOnePartnerAtOnce(t *testing.T) {
	noLeaks(t)
	gb := startNode(t, "GB")
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	base := uint64(now.Unix())
	// cardOf returns a maker of agency cc's cards, all signed by one key
	// and listing one replica, as a partner's successive cards are.
	cardOf := func(cc string) func(seq uint64) *card.Card {
		key, peer := newKey(t), randomPeer(t).String()
		return func(seq uint64) *card.Card {
			c := &card.Card{Version: card.Version, Agency: cc, Name: "Agency " + cc, Issued: now,
				Expires: now.Add(24 * time.Hour), Sequence: seq,
				Replicas: []card.Replica{{PeerID: peer, Addrs: []string{"/ip4/127.0.0.1/tcp/9"}}}}
			if err := c.Sign(key); err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	// check: the partner entries of cc pin strictly newer cards, and the
	// pin in force is the card of sequence want.
	check := func(t *testing.T, cc string, want uint64) {
		t.Helper()
		es, err := gb.auditG.Entries(ctx, ledger.Filter{Types: []ledger.Type{ledger.TypePartner}, Partner: cc})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) < 2 {
			t.Fatalf("%d partner entries of %s; want the pins", len(es), cc)
		}
		for i := 1; i < len(es); i++ {
			if es[i].Count <= es[i-1].Count {
				t.Errorf("partner entry %d pins %s's card %d after entry %d pinned card %d",
					es[i].Index, cc, es[i].Count, es[i-1].Index, es[i-1].Count)
			}
		}
		b, err := gb.auditG.Get(nsPins, cc)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := card.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if pc.Sequence != want {
			t.Errorf("pin in force of %s: card %d; want the newest, %d", cc, pc.Sequence, want)
		}
		if last := es[len(es)-1].Count; last != pc.Sequence {
			t.Errorf("last partner entry of %s pins card %d, the pin in force is card %d", cc, last, pc.Sequence)
		}
	}

	t.Run("the older pin reads before the newer writes", func(t *testing.T) {
		de := cardOf("DE")
		if _, err := gb.cards.PinCard(ctx, "user:admin", de(base), ""); err != nil {
			t.Fatalf("pin DE's card %d: %v", base, err)
		}
		// The pin of card base+1 stops once it has read the pin in force
		// (card base), until the pin of card base+2 has finished.
		reached, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		gb.cards.pinRead = func(pc *card.Card) {
			if pc.Sequence == base+1 {
				once.Do(func() { close(reached); <-release })
			}
		}
		defer func() { gb.cards.pinRead = nil }()
		older := make(chan error, 1)
		go func() {
			_, err := gb.cards.PinCard(ctx, "sync", de(base+1), "")
			older <- err
		}()
		<-reached
		if _, err := gb.cards.PinCard(ctx, "sync", de(base+2), ""); err != nil {
			t.Fatalf("pin DE's card %d: %v", base+2, err)
		}
		close(release)
		if err := <-older; !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("pin of card %d after card %d = %v; want ErrConflict (not newer)", base+1, base+2, err)
		}
		check(t, "DE", base+2)
	})

	t.Run("pins at once, many times", func(t *testing.T) {
		fr := cardOf("FR")
		if _, err := gb.cards.PinCard(ctx, "user:admin", fr(base), ""); err != nil {
			t.Fatalf("pin FR's card %d: %v", base, err)
		}
		const rounds = 15
		for r := range uint64(rounds) {
			seqs := []uint64{base + 3*r + 2, base + 3*r + 1} // the newer first
			var wg sync.WaitGroup
			for _, seq := range seqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := gb.cards.PinCard(ctx, "sync", fr(seq), ""); err != nil && !errors.Is(err, httpapi.ErrConflict) {
						t.Errorf("pin FR's card %d: %v", seq, err)
					}
				}()
			}
			wg.Wait()
		}
		check(t, "FR", base+3*(rounds-1)+2)
	})
}

// TestUnpinWhilePinned: a partner removed while a newer card of it is
// pinned ends removed, its removal the last partner entry: never a pin
// entry after the removal with no pin in force, nor a pin in force after
// the removal (defect 15's race, between a removal and a pin).
func TestUnpinWhilePinned(t *testing.T) {
	noLeaks(t)
	gb := startNode(t, "GB")
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	key, peer := newKey(t), randomPeer(t).String()
	de := func(seq uint64) *card.Card {
		c := &card.Card{Version: card.Version, Agency: "DE", Name: "Agency DE", Issued: now,
			Expires: now.Add(24 * time.Hour), Sequence: seq,
			Replicas: []card.Replica{{PeerID: peer, Addrs: []string{"/ip4/127.0.0.1/tcp/9"}}}}
		if err := c.Sign(key); err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := uint64(now.Unix())
	if _, err := gb.cards.PinCard(ctx, "user:admin", de(base), ""); err != nil {
		t.Fatal(err)
	}
	// The removal stops just before it writes, until a newer card is pinned.
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	gb.cards.unpinWrite = func(string) { once.Do(func() { close(reached); <-release }) }
	defer func() { gb.cards.unpinWrite = nil }()
	removed := make(chan error, 1)
	go func() { removed <- gb.cards.UnpinPartner(ctx, "user:admin", "DE") }()
	<-reached
	if _, err := gb.cards.PinCard(ctx, "sync", de(base+1), ""); err != nil {
		t.Fatalf("pin DE's card %d during the removal: %v", base+1, err)
	}
	close(release)
	if err := <-removed; err != nil {
		t.Fatalf("UnpinPartner(DE): %v", err)
	}
	es, err := gb.auditG.Entries(ctx, ledger.Filter{Types: []ledger.Type{ledger.TypePartner}, Partner: "DE"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d partner entries of DE; want 3 (pin, replace, remove)", len(es))
	}
	if last := es[len(es)-1]; last.Count != 0 || last.Body.Purpose != "remove partner" {
		t.Errorf("last partner entry of DE: %q, card %d; want the removal", last.Body.Purpose, last.Count)
	}
	if b, err := gb.auditG.Get(nsPins, "DE"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("pin of DE after its removal: %d bytes, %v; want none", len(b), err)
	}
	if _, ok := gb.cards.Pins()["DE"]; ok {
		t.Errorf("DE still pinned in force after its removal")
	}
}

package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ledger"
)

// syncEntries returns the owner's sync entries for partner (transfers) and
// its sync refusals, as "kind/version" and "kind/reason".
func syncEntries(t *testing.T, owner *Node, partner string) (sent, refused []string) {
	t.Helper()
	for _, e := range byType(t, owner, ledger.TypeSync) {
		// The open reach's: the victim and witness sets are the safeguarding
		// tests' (safeguarding_test.go).
		if e.Partner == partner && (e.Reaches == "" || e.Reaches == reachOpen) {
			sent = append(sent, fmt.Sprintf("%s/%d", e.Kind, e.SetVersion))
		}
	}
	for _, e := range byType(t, owner, ledger.TypeDenial) {
		if r, ok := strings.CutPrefix(e.Body.Purpose, "sync refused: "); ok && e.Partner == partner {
			refused = append(refused, kindReach(e.Kind, orOpen(e.Reaches))+"/"+r)
		}
	}
	return sent, refused
}

// TestQuietSync: a partner polling every second writes on the owner's
// ledger one sync entry per kind and version transferred and one denial per
// kind and reason refused, however many polls; it polls only the kinds its
// policy exchanges with the owner, and waits before it asks again for a
// kind the owner refused.
func TestQuietSync(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	gb, st, values := stewardedGB(t, 20)
	fr, _ := startStoppable(t, "FR", time.Second)
	applyExamplePolicy(t, fr)
	// GB holds phone numbers before FR pins it: an owner with no set of
	// a kind yet refuses it (unknown_epoch), and that refusal, recorded
	// once, is not what this test counts.
	importRows(t, st, "phone", values[:10]...)
	gbCard, _ := gb.admin.Card(ctx)
	frCard, _ := fr.admin.Card(ctx)
	if _, err := fr.admin.AddPartner(ctx, gbCard.Card, gbCard.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, err := gb.admin.AddPartner(ctx, frCard.Card, frCard.Fingerprint); err != nil {
		t.Fatal(err)
	}
	copyAt := func(v uint32) func() bool {
		return func() bool {
			pc := fr.partnerSets.partnerCopy("GB", "phone", reachOpen)
			pc.mu.Lock()
			defer pc.mu.Unlock()
			return pc.set != nil && pc.set.Version() == v
		}
	}
	poll(t, "FR's background sync of GB's phone set", time.Minute, copyAt(1))
	passes := func(n int64) {
		p0 := fr.partnerSets.passes.Load()
		poll(t, "FR's background passes", time.Minute, func() bool { return fr.partnerSets.passes.Load() >= p0+n })
	}
	passes(3)
	sent, refused := syncEntries(t, gb.Node, "FR")
	if len(sent) != 1 || sent[0] != "phone/1" {
		t.Errorf("GB's sync entries for FR after several polls: %v; want phone/1 alone", sent)
	}
	seen := map[string]bool{}
	for _, r := range refused {
		if seen[r] {
			t.Errorf("GB recorded refusal %s twice: %v", r, refused)
		}
		seen[r] = true
		if strings.HasPrefix(r, "phone/") {
			t.Errorf("GB refused FR phone: %v", refused)
		}
	}
	if !fr.partnerSets.refusedNow("GB", "btc", reachOpen) {
		t.Errorf("FR does not wait before asking GB for btc again")
	}

	importRows(t, st, "phone", values[10:]...)
	poll(t, "FR's background sync of version 2", time.Minute, copyAt(2))
	passes(3)
	sent, refused2 := syncEntries(t, gb.Node, "FR")
	if len(sent) != 2 || sent[1] != "phone/2" {
		t.Errorf("GB's sync entries for FR after the second import: %v; want phone/1, phone/2", sent)
	}
	if len(refused2) != len(refused) {
		t.Errorf("GB's sync refusals for FR grew from %v to %v with no new reason", refused, refused2)
	}
	if exchange.Reason("kind_not_allowed").Valid() && !seen["btc/kind_not_allowed"] && !seen["btc/not_permitted"] {
		t.Errorf("GB's refusals for FR %v hold none for btc", refused)
	}
}

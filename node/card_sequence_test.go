package node

import (
	"testing"
	"time"
)

// TestCardSequenceAboveEveryIssued: a card any replica signs has a
// sequence above every card a replica of the agency signed before, even
// one whose clock ran ahead. testnet chaos found it: a replica restarted
// with its clock 90 s ahead signed a card whose sequence (the issue time)
// was 90 s in the future; partners pinned it, and then refused every card
// the other replicas signed for the next 90 s, with the new epoch's key on
// it ("card is not newer than the pinned card"), so their queries were
// denied unknown_epoch (docs/RELIABILITY.md, defect 7).
func TestCardSequenceAboveEveryIssued(t *testing.T) {
	noLeaks(t)
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	n := gb.leader()
	// Two signers of one agency over the same audit group, as two replicas
	// are: one with its clock 90 s ahead.
	replica := func(now func() time.Time) *cards {
		cfg := n.cards.cfg
		cfg.Now = now
		return newCards(cfg)
	}
	ahead := replica(func() time.Time { return time.Now().Add(90 * time.Second) })
	right := replica(time.Now)
	skewed, err := ahead.OwnCard()
	if err != nil {
		t.Fatal(err)
	}
	later, err := right.OwnCard()
	if err != nil {
		t.Fatal(err)
	}
	if later.Sequence <= skewed.Sequence {
		t.Fatalf("card signed after one of a replica 90 s ahead: sequence %d, not above %d; partners would refuse it", later.Sequence, skewed.Sequence)
	}
	// And the replica that ran ahead, signing again, goes on above both.
	ahead.mu.Lock()
	ahead.own = nil
	ahead.mu.Unlock()
	again, err := ahead.OwnCard()
	if err != nil {
		t.Fatal(err)
	}
	if again.Sequence <= later.Sequence {
		t.Fatalf("card signed again: sequence %d, not above %d", again.Sequence, later.Sequence)
	}
}

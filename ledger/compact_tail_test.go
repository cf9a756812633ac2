package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCompactKeepsADeposedLeadersTail: a leader cut off from its group
// appends an entry it can never commit; the others elect a leader and
// commit more. If the cut replica then compacted as it does for an
// erasure (a snapshot with no trailing log), its log would hold the
// uncommitted entry after the snapshot and not the snapshot's own entry:
// Raft (hashicorp/raft 1.8) then looks that entry up for the new leader's
// AppendEntries, misses it, asks for the snapshot, installs it and misses
// again, for ever, and the replica never catches up (found by testnet
// chaos: a data replica paused past the election timeout while it led
// then reported no rows). Compact must refuse while entries wait to be
// applied (ErrCompactLater), and the replica must catch up once back.
func TestCompactKeepsADeposedLeadersTail(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-replica cluster")
	}
	c := MakeCluster(t, 3)
	ctx := context.Background()
	lead := c.Leader()
	for i := range 5 {
		if _, err := lead.l.Append(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.converge()

	c.Cut(lead)
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := lead.l.Append(tctx, entry(100)); err == nil {
		t.Fatalf("an append on a leader cut off from its group committed")
	}
	cancel()
	var next *replica
	c.poll(10*time.Second, "a leader of the other two", func() error {
		for _, r := range c.running() {
			if r != lead && r.l.isLeader() {
				next = r
				return nil
			}
		}
		return errors.New("none")
	})
	for i := range 5 {
		if _, err := next.l.Append(ctx, entry(200+i)); err != nil {
			t.Fatal(err)
		}
	}
	last, applied := lead.l.raft.LastIndex(), lead.l.raft.AppliedIndex()
	if last <= applied {
		t.Fatalf("the cut replica's log ends at %d, applied %d: no uncommitted tail to test with", last, applied)
	}
	if _, err := lead.l.Compact(); !errors.Is(err, ErrCompactLater) {
		t.Errorf("Compact with entries %d to %d not applied = %v; want ErrCompactLater", applied+1, last, err)
	}
	c.Restore(lead)
	c.converge()
	if _, err := lead.l.Compact(); err != nil {
		t.Errorf("Compact once caught up: %v", err)
	}
	if _, err := next.l.Append(ctx, entry(300)); err != nil {
		t.Fatal(err)
	}
	c.converge()
}

package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestQuorumCutReplica cuts a follower, then the leader, off from the
// group: each knows within about an election timeout that it cannot
// commit, and a FailFast write there fails with ErrNoQuorum at once
// instead of after the write timeout; the majority keeps committing, and
// FailFast writes there succeed.
func TestQuorumCutReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-replica cluster")
	}
	c := MakeCluster(t, 3)
	for _, r := range c.running() {
		c.poll(5*time.Second, r.id+" can commit", func() error { return r.l.Quorum() })
	}
	ctx := context.Background()

	cutAndCheck := func(r *replica) {
		t.Helper()
		c.Cut(r)
		c.poll(5*time.Second, r.id+" knows it cannot commit", func() error {
			if err := r.l.Quorum(); !errors.Is(err, ErrNoQuorum) {
				return errors.New("Quorum() = nil")
			}
			return nil
		})
		start := time.Now()
		_, err := r.l.Append(FailFast(ctx), entry(900))
		if took := time.Since(start); !errors.Is(err, ErrNoQuorum) || took > time.Second {
			t.Errorf("FailFast Append on cut %s = %v after %v; want ErrNoQuorum at once (testWriteTimeout %v)",
				r.id, err, took, testWriteTimeout)
		}
		// The majority elects (or keeps) a leader and commits, fail-fast too.
		var other *replica
		c.poll(10*time.Second, "a leader of the majority", func() error {
			for _, x := range c.running() {
				if x != r && x.l.isLeader() && x.l.Quorum() == nil {
					other = x
					return nil
				}
			}
			return errors.New("none")
		})
		for _, x := range c.running() {
			if x == r {
				continue
			}
			c.poll(5*time.Second, x.id+" can commit", func() error { return x.l.Quorum() })
			if _, err := x.l.Append(FailFast(ctx), entry(901)); err != nil {
				t.Errorf("FailFast Append on %s of the majority (leader %s): %v", x.id, other.id, err)
			}
		}
	}
	f := c.followers()[0]
	cutAndCheck(f)
	// Back in the group, it follows again; then the leader is cut: it
	// steps down when its lease runs out.
	c.Restore(f)
	c.poll(10*time.Second, f.id+" can commit again", func() error { return f.l.Quorum() })
	cutAndCheck(c.Leader())
}

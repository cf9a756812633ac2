package ledger

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// skewClock is time.Now moved by an offset a test changes.
type skewClock struct{ off atomic.Int64 }

func (c *skewClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// TestLeaderClockAhead: the leader's clock jumps an hour ahead of the
// other two replicas'. It stops writing (another replica takes over), so
// the entries appended after the jump carry the majority's time, not the
// leader's: one replica's clock cannot pin entry times (and with them day
// budgets and prune dates) forward.
func TestLeaderClockAhead(t *testing.T) {
	c := newCluster(t)
	clocks := map[string]*skewClock{}
	for _, id := range []string{"r1", "r2", "r3"} {
		clocks[id] = &skewClock{}
	}
	c.now = func(id string) func() time.Time { return clocks[id].Now }
	c.grow(3)
	lead := c.Leader()
	c.appendAll(lead, 0, 3)
	clocks[lead.id].off.Store(int64(time.Hour))

	for i := 3; i < 8; i++ {
		if _, err := c.appendRetry(lead, entry(i), 15*time.Second); err != nil {
			t.Fatalf("Append(%d) after the leader's clock jumped: %v", i, err)
		}
	}
	c.converge()
	bound := time.Now().Add(maxClockAhead)
	for _, r := range c.running() {
		es, err := r.l.Entries(context.Background(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Time.After(bound) {
				t.Errorf("replica %s entry %d time %s: pinned forward by the leader's clock (now %s)", r.id, e.Index, e.Time, time.Now())
			}
		}
	}
	if lead.l.isLeader() {
		t.Errorf("replica %s still leads with its clock an hour ahead", lead.id)
	}

	// A follower's clock ahead stops nothing: only the leader stamps.
	clocks[lead.id].off.Store(0)
	now := c.Leader()
	clocks[c.followers()[0].id].off.Store(int64(time.Hour))
	start := time.Now()
	c.appendAll(now, 8, 5)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("5 appends with a follower's clock ahead took %v", d)
	}
	if !now.l.isLeader() {
		t.Errorf("leader %s stepped down for a follower's clock", now.id)
	}
}

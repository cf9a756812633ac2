package ledger

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestHaltedLeaderStepsDown: when the leader's state storage fails, its
// state machine halts; it hands leadership over and reports unhealthy, and
// writes resume on the other replicas within 10 s.
func TestHaltedLeaderStepsDown(t *testing.T) {
	c := MakeCluster(t, 3)
	lead := c.Leader()
	c.appendAll(lead, 0, 3)
	disk := errors.New("injected: no space left on device")
	lead.l.fsm.failCommit.Store(&disk)

	// The next write halts the leader's state machine (it commits in Raft
	// and the followers apply it).
	var other *replica
	for _, r := range c.running() {
		if r != lead {
			other = r
			break
		}
	}
	halted := time.Now()
	if _, err := c.appendRetry(other, entry(3), 10*time.Second); err != nil {
		t.Fatalf("write after the leader's state storage failed: not committed within 10 s: %v", err)
	}
	t.Logf("writes resumed %v after the leader's storage failed", time.Since(halted).Round(time.Millisecond))
	st := lead.l.Status()
	if st.Healthy || !errors.Is(st.Err, ErrHalted) {
		t.Errorf("halted replica's status: healthy %v, err %v; want unhealthy with ErrHalted", st.Healthy, st.Err)
	}
	// It does not lead again while halted: the others keep writing.
	deadline := time.Now().Add(3 * time.Second)
	for i := 4; time.Now().Before(deadline); i++ {
		if _, err := c.appendRetry(other, entry(i), 10*time.Second); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := c.Leader(); got == lead {
		t.Errorf("halted replica %s leads", lead.id)
	}
	// The healthy replicas agree.
	var want uint64
	for _, r := range c.running() {
		if r == lead {
			continue
		}
		c.poll(5*time.Second, "catch up "+r.id, func() error {
			if r.l.RaftApplied() < r.l.Status().Commit {
				return fmt.Errorf("applied %d of %d", r.l.RaftApplied(), r.l.Status().Commit)
			}
			return nil
		})
		n, _, err := r.l.TreeHead()
		if err != nil {
			t.Fatal(err)
		}
		if want == 0 {
			want = n
		} else if n != want {
			t.Errorf("replica %s holds %d entries; want %d", r.id, n, want)
		}
	}
}

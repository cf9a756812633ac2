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

	// The next write halts the leader's state machine: the command commits
	// in Raft and the followers apply it.
	var other *replica
	for _, r := range c.running() {
		if r != lead {
			other = r
			break
		}
	}
	if _, err := c.appendRetry(other, entry(3), 10*time.Second); err != nil {
		t.Fatalf("the write that halts the leader: %v", err)
	}
	c.poll(5*time.Second, "the leader's state machine halts", func() error {
		if lead.l.Status().Healthy {
			return errors.New("still healthy")
		}
		return nil
	})
	halted := time.Now()
	if _, err := c.appendRetry(other, entry(4), 10*time.Second); err != nil {
		t.Fatalf("write after the leader halted: not committed within 10 s: %v", err)
	}
	t.Logf("writes resumed %v after the leader halted", time.Since(halted).Round(time.Millisecond))
	st := lead.l.Status()
	if st.Healthy || !errors.Is(st.Err, ErrHalted) || st.State == "Leader" {
		t.Errorf("halted replica's status: %s, healthy %v, err %v; want a follower, unhealthy with ErrHalted", st.State, st.Healthy, st.Err)
	}
	// It does not lead again while halted: the others keep writing.
	for i := 5; time.Since(halted) < 3*time.Second; i++ {
		if _, err := c.appendRetry(other, entry(i), 10*time.Second); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := c.Leader(); got == lead {
		t.Errorf("halted replica %s leads", lead.id)
	}
	// The healthy replicas agree.
	c.poll(10*time.Second, "the healthy replicas converge", func() error {
		var heads []string
		for _, r := range c.running() {
			if r == lead {
				continue
			}
			n, root, err := r.l.TreeHead()
			if err != nil {
				return err
			}
			heads = append(heads, fmt.Sprintf("%d %x", n, root[:4]))
		}
		if len(heads) != 2 || heads[0] != heads[1] {
			return fmt.Errorf("tree heads %v", heads)
		}
		return nil
	})
}

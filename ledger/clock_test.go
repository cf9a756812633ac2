package ledger

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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

// TestJudgeClocks: the leader writes only when a majority of the voters,
// itself included, have clocks it has read and that are at most
// maxClockAhead behind its own.
func TestJudgeClocks(t *testing.T) {
	now := time.Now()
	mono := time.Now()
	servers := func(n int) []raft.Server {
		var ss []raft.Server
		for i := range n {
			ss = append(ss, raft.Server{ID: raft.ServerID(fmt.Sprintf("r%d", i+1)), Suffrage: raft.Voter})
		}
		return append(ss, raft.Server{ID: "n1", Suffrage: raft.Nonvoter})
	}
	// sample gives replica id a clock behind ours by d; d < 0: no clock (older version).
	sample := func(id string, d time.Duration) clockSample {
		s := clockSample{id: id, mono: mono}
		if d >= 0 {
			s.them = now.Add(-d)
		}
		return s
	}
	ahead := time.Hour
	for _, tc := range []struct {
		name    string
		voters  int
		samples []clockSample
		want    string // "ok", "ahead" or "unknown"
	}{
		{"alone", 1, nil, "ok"},
		{"3, in step", 3, []clockSample{sample("r2", 0), sample("r3", time.Minute)}, "ok"},
		{"3, one behind", 3, []clockSample{sample("r2", ahead), sample("r3", 0)}, "ok"},
		{"3, both behind", 3, []clockSample{sample("r2", ahead), sample("r3", ahead)}, "ahead"},
		{"3, one behind, one unread", 3, []clockSample{sample("r2", ahead)}, "ahead"},
		{"3, none read", 3, nil, "unknown"},
		{"3, an older version", 3, []clockSample{sample("r2", -1)}, "ok"},
		{"5, two behind", 5, []clockSample{sample("r2", ahead), sample("r3", ahead), sample("r4", 0), sample("r5", 0)}, "ok"},
		{"5, three behind", 5, []clockSample{sample("r2", ahead), sample("r3", ahead), sample("r4", ahead), sample("r5", 0)}, "ahead"},
		{"5, a non-voter and a stranger do not count", 5, []clockSample{sample("n1", 0), sample("r9", 0), sample("r2", 0)}, "unknown"},
		{"3, stale samples do not count", 3, []clockSample{{id: "r2", them: now, mono: mono.Add(-time.Minute)}}, "unknown"},
	} {
		voters, known, behind, _ := judgeClocks(now, servers(tc.voters), &clockView{samples: tc.samples, at: mono})
		q := voters/2 + 1
		got := "ahead"
		switch {
		case known-behind >= q:
			got = "ok"
		case known < q:
			got = "unknown"
		}
		if voters != tc.voters || got != tc.want {
			t.Errorf("%s: %d voters, %d known, %d behind: %s; want %d voters, %s", tc.name, voters, known, behind, got, tc.voters, tc.want)
		}
	}
}

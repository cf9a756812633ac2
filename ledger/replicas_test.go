package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// appendRetry appends e through the running replicas, starting with the
// given one, retrying ambiguous failures with the same command ID until
// the deadline. It returns the receipt or the last error.
func (c *cluster) appendRetry(first *replica, e Entry, d time.Duration) (Receipt, error) {
	ctx := WithCommandID(context.Background(), NewCommandID())
	deadline := time.Now().Add(d)
	r := first
	for {
		var err error
		if r != nil && r.l != nil {
			var rc Receipt
			rc, err = r.l.Append(ctx, e)
			if err == nil {
				return rc, nil
			}
		}
		if time.Now().After(deadline) {
			return Receipt{}, err
		}
		time.Sleep(10 * time.Millisecond)
		rs := c.runningSnapshot()
		if len(rs) > 0 {
			r = rs[rand.IntN(len(rs))]
		}
	}
}

// appendAll appends entry(from) … entry(from+n-1) with appendRetry, starting
// at r, and fails the test on the first that does not commit in 10 s.
func (c *cluster) appendAll(r *replica, from, n int) {
	c.t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := c.appendRetry(r, entry(i), 10*time.Second); err != nil {
			c.t.Fatalf("Append(%d): %v", i, err)
		}
	}
}

// putRetry is Put with retries (same command ID) for 10 s.
func (c *cluster) putRetry(r *replica, ns, key string, v []byte) (Receipt, error) {
	ctx := WithCommandID(context.Background(), NewCommandID())
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc, err := r.l.Put(ctx, ns, key, v)
		if err == nil || time.Now().After(deadline) {
			return rc, err
		}
	}
}

// runningSnapshot is running() safe to call from writer goroutines while
// the test goroutine stops a replica: it reads under the harness lock.
func (c *cluster) runningSnapshot() []*replica {
	harnessMu.Lock()
	defer harnessMu.Unlock()
	var rs []*replica
	for _, r := range c.reps {
		if r.l != nil && r.mux != nil {
			rs = append(rs, &replica{id: r.id, l: r.l})
		}
	}
	return rs
}

var harnessMu sync.Mutex

// TestClusterAppends: 1,000 appends from 16 goroutines through the leader
// and the followers; every acknowledged entry is on every replica exactly
// once, with equal sizes and roots. A follower's linearizable read sees a
// write made through the leader.
func TestClusterAppends(t *testing.T) {
	c := MakeCluster(t, 3)
	const n, writers = 1000, 16
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.reps[w%len(c.reps)]
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if _, err := r.l.Append(context.Background(), entry(i)); err != nil {
					t.Errorf("Append(%d) on %s: %v", i, r.id, err)
					return
				}
				mu.Lock()
				acked[fmt.Sprintf("req-%d", i)] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(acked) != n {
		t.Fatalf("%d appends acknowledged; want %d", len(acked), n)
	}
	c.converge()
	c.checkExactlyOnce(acked)
	for _, r := range c.reps {
		if st := r.l.Status(); st.Size != n {
			t.Errorf("replica %s has %d entries; want %d", r.id, st.Size, n)
		}
	}

	// Linearizable read on a follower, stale reads allowed otherwise.
	lead, f := c.Leader(), c.followers()[0]
	ctx := context.Background()
	if _, err := lead.l.Put(ctx, "pins", "FR", []byte("card-1")); err != nil {
		t.Fatal(err)
	}
	if err := f.l.Linearize(ctx); err != nil {
		t.Fatalf("Linearize on follower %s: %v", f.id, err)
	}
	if v, err := f.l.Get("pins", "FR"); err != nil || string(v) != "card-1" {
		t.Errorf("Get after Linearize on %s = %q, %v; want card-1", f.id, v, err)
	}
	// A write through a follower is applied there when it returns.
	if _, err := f.l.Put(ctx, "pins", "DE", []byte("card-2")); err != nil {
		t.Fatal(err)
	}
	if v, err := f.l.Get("pins", "DE"); err != nil || string(v) != "card-2" {
		t.Errorf("Get after Put on %s = %q, %v; want card-2", f.id, v, err)
	}
	// An auditor's read on a follower is logged and sees its own entry.
	es, rc, err := f.l.Read(ctx, "auditor-1", "inspection", Filter{After: n})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || es[len(es)-1].Index != rc.Index || es[len(es)-1].Type != TypeLedgerRead {
		t.Errorf("Read on follower returned %d entries, not ending with its own ledger_read %d", len(es), rc.Index)
	}
	if ms, err := f.l.Members(); err != nil || len(ms) != 3 {
		t.Errorf("Members() = %v, %v; want 3", ms, err)
	} else {
		leaders := 0
		for _, m := range ms {
			if m.Suffrage != "Voter" {
				t.Errorf("member %s is %s; want Voter", m.ID, m.Suffrage)
			}
			if m.Leader {
				leaders++
				if m.ID != lead.id {
					t.Errorf("Members says %s leads; want %s", m.ID, lead.id)
				}
			}
		}
		if leaders != 1 {
			t.Errorf("Members shows %d leaders; want 1", leaders)
		}
	}
}

// TestLeaderLostUnderLoad: the leader is closed without warning in the
// middle of the load; no acknowledged entry is lost, a new leader comes
// within 5 s, and appends resume.
func TestLeaderLostUnderLoad(t *testing.T) {
	c := MakeCluster(t, 3)
	const n, writers = 600, 16
	var mu sync.Mutex
	acked := map[string]bool{}
	var done atomic.Int64
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				rs := c.runningSnapshot()
				if _, err := c.appendRetry(rs[w%len(rs)], entry(i), 20*time.Second); err != nil {
					t.Errorf("Append(%d): %v", i, err)
					return
				}
				mu.Lock()
				acked[fmt.Sprintf("req-%d", i)] = true
				mu.Unlock()
				done.Add(1)
			}
		}()
	}
	c.poll(30*time.Second, "200 appends", func() error {
		if done.Load() < 200 {
			return fmt.Errorf("%d done", done.Load())
		}
		return nil
	})
	old := c.Leader()
	before := done.Load()
	harnessMu.Lock()
	mux, l := old.mux, old.l
	old.mux, old.l = nil, nil
	harnessMu.Unlock()
	mux.Close()
	l.Close()
	start := time.Now()
	lead := c.Leader() // polls for 5 s
	t.Logf("leader %s lost after %d appends; %s leads after %v", old.id, before, lead.id, time.Since(start))
	if lead.id == old.id {
		t.Fatalf("the closed replica still leads")
	}
	c.poll(20*time.Second, "appends resume", func() error {
		if done.Load() < before+100 {
			return fmt.Errorf("%d done since", done.Load()-before)
		}
		return nil
	})
	wg.Wait()
	c.converge()
	c.checkExactlyOnce(acked)
	if len(acked) != n {
		t.Errorf("%d appends acknowledged; want %d", len(acked), n)
	}
	// The old leader comes back and catches up.
	c.start(old, false)
	c.converge()
	c.checkExactlyOnce(acked)
}

// TestFollowerCutOff: a follower's transport closes; the others go on;
// brought back, it catches up and the roots are equal.
func TestFollowerCutOff(t *testing.T) {
	c := MakeCluster(t, 3)
	lead := c.Leader()
	c.appendAll(lead, 0, 50)
	f := c.reps[0]
	if f == lead {
		f = c.reps[1]
	}
	c.Cut(f)
	for i := 50; i < 150; i++ {
		if _, err := c.appendRetry(lead, entry(i), 10*time.Second); err != nil {
			t.Fatalf("Append(%d) with a follower cut off: %v", i, err)
		}
	}
	if st := f.l.Status(); st.Size >= 150 {
		t.Fatalf("cut-off follower has %d entries", st.Size)
	}
	c.Restore(f)
	c.converge()
	if st := f.l.Status(); st.Size != 150 {
		t.Errorf("restored follower has %d entries; want 150", st.Size)
	}
}

// TestNoQuorum: with two of three replicas stopped, Append and Admit fail
// with ErrNoQuorum within the bound, and succeed again once one returns.
func TestNoQuorum(t *testing.T) {
	c := MakeCluster(t, 3)
	lead := c.Leader()
	c.appendAll(lead, 0, 5)
	last := c.followers()[0]
	for _, r := range c.reps {
		if r != last {
			c.stop(r)
		}
	}
	adm := Admission{Entry: entry(100), Reserve: []Reservation{{Key: "kind/phone/DAY", Amount: 1, Limit: 10}}}
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"Append", func() error { _, err := last.l.Append(context.Background(), entry(99)); return err }},
		{"Admit", func() error { _, err := last.l.Admit(context.Background(), adm); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.op()
			took := time.Since(start)
			if !errors.Is(err, ErrNoQuorum) {
				t.Errorf("%s without quorum = %v; want ErrNoQuorum", tc.name, err)
			}
			if took > testWriteTimeout+time.Second {
				t.Errorf("%s without quorum took %v; bound %v", tc.name, took, testWriteTimeout)
			}
		})
	}
	back := c.reps[0]
	if back == last {
		back = c.reps[1]
	}
	c.start(back, false)
	c.poll(10*time.Second, "Append with quorum back", func() error {
		_, err := last.l.Append(context.Background(), entry(99))
		return err
	})
	if _, err := last.l.Admit(context.Background(), adm); err != nil {
		t.Errorf("Admit with quorum back: %v", err)
	}
}

// TestAdmitAcrossFailover: 100 concurrent reservations against a budget of
// 50, through every replica, with the leader closed in the middle, admit
// exactly 50; a client whose call failed ambiguously looks its outcome up
// by command ID on any replica.
func TestAdmitAcrossFailover(t *testing.T) {
	c := MakeCluster(t, 3)
	const n, budget = 100, 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewCommandID()
	}
	adm := func(i int) Admission {
		e := entry(i)
		e.Type = TypeMatchIn
		return Admission{Entry: e, Reserve: []Reservation{{Key: "partner/FR/phone/DAY", Amount: 1, Limit: budget}}}
	}
	var done, lookedUp atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := WithCommandID(context.Background(), ids[i])
			deadline := time.Now().Add(60 * time.Second)
			rs := c.runningSnapshot()
			r := rs[i%len(rs)]
			for {
				_, err := r.l.Admit(ctx, adm(i))
				if err == nil || errors.Is(err, ErrBudget) {
					done.Add(1)
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("Admit(%d): %v", i, err)
					return
				}
				// Ambiguous: ask any replica what became of the command.
				rs = c.runningSnapshot()
				r = rs[rand.IntN(len(rs))]
				lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, lerr := r.l.LookupOutcome(lctx, ids[i])
				cancel()
				if lerr == nil || errors.Is(lerr, ErrBudget) {
					lookedUp.Add(1)
					done.Add(1)
					return
				}
			}
		}()
	}
	c.poll(60*time.Second, "30 admissions", func() error {
		if done.Load() < 30 {
			return fmt.Errorf("%d done", done.Load())
		}
		return nil
	})
	old := c.Leader()
	harnessMu.Lock()
	mux, l := old.mux, old.l
	old.mux, old.l = nil, nil
	harnessMu.Unlock()
	mux.Close()
	l.Close()
	wg.Wait()
	t.Logf("leader %s closed after %d admissions; %d outcomes looked up", old.id, 30, lookedUp.Load())
	c.converge()
	for _, r := range c.running() {
		ok, denied := 0, 0
		for i, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rc, err := r.l.LookupOutcome(ctx, id)
			cancel()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrBudget):
				denied++
			default:
				t.Errorf("LookupOutcome(%d) on %s: %v", i, r.id, err)
			}
			if !rc.Appended {
				t.Errorf("command %d appended nothing on %s", i, r.id)
			}
		}
		if ok != budget || denied != n-budget {
			t.Errorf("replica %s: %d admitted, %d denied; want %d and %d", r.id, ok, denied, budget, n-budget)
		}
		es, err := r.l.Entries(context.Background(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		count := map[Type]int{}
		for _, e := range es {
			count[e.Type]++
		}
		if count[TypeMatchIn] != budget || count[TypeDenial] != n-budget {
			t.Errorf("replica %s holds %d match_in and %d denial entries; want %d and %d",
				r.id, count[TypeMatchIn], count[TypeDenial], budget, n-budget)
		}
	}
	// An unknown command ID is not found, on a follower too.
	f := c.followers()[0]
	if _, err := f.l.LookupOutcome(context.Background(), NewCommandID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupOutcome(unknown) = %v; want ErrNotFound", err)
	}
}

// TestMembership: a replica added to a running cluster gets the state by
// snapshot; then the leader is removed; state and roots are equal after.
func TestMembership(t *testing.T) {
	c := newCluster(t)
	c.tune = func(rc *raft.Config) {
		fastRaft(rc)
		rc.TrailingLogs = 10 // compact hard, so that a new replica needs the snapshot
	}
	for i := range 3 {
		r := c.newReplica(fmt.Sprintf("r%d", i+1), c.ca)
		c.start(r, i == 0)
		if i > 0 {
			c.add(r)
		}
	}
	lead := c.Leader()
	ctx := context.Background()
	c.appendAll(lead, 0, 100)
	for i := range 20 {
		if _, err := c.putRetry(lead, "users", "u"+strconv.Itoa(i), []byte("role")); err != nil {
			t.Fatal(err)
		}
	}
	// Every replica snapshots and compacts its log, so that whichever
	// leads when r4 joins must send it the snapshot.
	c.converge()
	for _, r := range c.running() {
		if err := r.l.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", r.id, err)
		}
	}
	r4 := c.newReplica("r4", c.ca)
	c.start(r4, false)
	// Added through a follower: forwarded to the leader.
	c.poll(10*time.Second, "add r4", func() error {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return c.followers()[0].l.AddVoter(actx, "r4", r4.addr)
	})
	c.converge()
	if s := r4.l.raft.Stats()["last_snapshot_index"]; s == "0" || s == "" {
		t.Errorf("r4 last_snapshot_index = %q; want the installed snapshot", s)
	}
	if v, err := r4.l.Get("users", "u7"); err != nil || string(v) != "role" {
		t.Errorf("r4 Get(users/u7) = %q, %v", v, err)
	}
	// The restored tree proves inclusion against the leader's root.
	p, err := r4.l.Entry(42, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, root, _ := lead.l.TreeHead()
	if err := tlog.CheckRecord(p.Proof, int64(p.Size), root, 42, tlog.RecordHash(p.Leaf)); err != nil {
		t.Errorf("r4 inclusion proof against the leader's root: %v", err)
	}

	// Remove the leader (asked on the leader itself).
	if err := lead.l.RemoveServer(ctx, lead.id); err != nil {
		t.Fatalf("RemoveServer(leader): %v", err)
	}
	c.poll(5*time.Second, "a new leader", func() error {
		for _, r := range c.running() {
			if r != lead && r.l.isLeader() {
				return nil
			}
		}
		return errors.New("none")
	})
	c.stop(lead)
	next := c.Leader()
	for i := 100; i < 150; i++ {
		if _, err := c.appendRetry(r4, entry(i), 10*time.Second); err != nil {
			t.Fatalf("append after removing the leader: %v", err)
		}
	}
	c.converge()
	ms, err := next.l.Members()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range ms {
		ids[m.ID] = true
	}
	if len(ms) != 3 || ids[lead.id] || !ids["r4"] {
		t.Errorf("members after removing %s: %v", lead.id, ms)
	}
	for _, r := range c.running() {
		if st := r.l.Status(); st.Size != 150 {
			t.Errorf("replica %s has %d entries; want 150", r.id, st.Size)
		}
	}
	// r4 passes the start check on its restored directory.
	c.Restore(r4)
	c.converge()
}

// TestWrongCertificate: a replica whose certificate comes from another CA
// cannot join (AddVoter refuses it) or read; a replica with a good
// certificate that is not a member gets no forwarded writes through.
func TestWrongCertificate(t *testing.T) {
	c := MakeCluster(t, 3)
	lead := c.Leader()
	c.appendAll(lead, 0, 10)
	other, err := tlsnet.NewCA("GB", time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	bad := c.newReplica("r9", other)
	c.start(bad, false)
	ctx := context.Background()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = lead.l.AddVoter(actx, "r9", bad.addr)
	cancel()
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("AddVoter(wrong CA) = %v; want ErrUnreachable", err)
	}
	if ms, _ := lead.l.Members(); len(ms) != 3 {
		t.Errorf("members after a refused add: %v", ms)
	}
	if err := bad.l.Linearize(ctx); !errors.Is(err, ErrNoQuorum) {
		t.Errorf("Linearize on the wrong-CA replica = %v; want ErrNoQuorum", err)
	}
	if _, _, err := bad.l.Read(ctx, "auditor", "look", Filter{}); !errors.Is(err, ErrNoQuorum) {
		t.Errorf("Read on the wrong-CA replica = %v; want ErrNoQuorum", err)
	}
	if st := bad.l.Status(); st.Size != 0 || st.Leader != "" {
		t.Errorf("wrong-CA replica status: %d entries, leader %q; want none", st.Size, st.Leader)
	}
	// Even told where the leader is, it cannot reach it.
	if _, err := bad.l.forward(ctx, lead.addr, &fwdRequest{Op: fwdReadIndex}); err == nil {
		t.Errorf("forward from the wrong-CA replica succeeded")
	}
	// A good certificate that is not a member: authenticated, but refused.
	stray := c.newReplica("r8", c.ca)
	c.start(stray, false)
	resp, err := stray.l.forward(ctx, lead.addr, &fwdRequest{Op: fwdCommand, Command: []byte(`{"op":"put","id":"x","time":0,"ns":"a","key":"b"}`)})
	if err != nil || !errors.Is(resp.err(), ErrNotMember) {
		t.Errorf("forward from a non-member = %+v, %v; want ErrNotMember", resp, err)
	}
	if _, err := lead.l.Get("a", "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a non-member's forwarded put was applied: %v", err)
	}
	c.stop(bad)
	c.stop(stray)
	c.converge()
}

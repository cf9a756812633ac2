package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/tlog"
)

// testFSM opens a state machine on a state database opened as Open opens
// it, in a directory of its own.
func testFSM(t testing.TB) *fsm {
	t.Helper()
	db, err := badger.Open(stateOptions(dbOptions(t.TempDir(), nil, badgerLogger{discard()})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := newFSM(db, discard())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// applyAt applies data as the command of the Raft entry at index idx.
func applyAt(f *fsm, idx uint64, data []byte) any {
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
}

// fsmHead is the state's tree size and root.
func fsmHead(t testing.TB, f *fsm) (uint64, tlog.Hash) {
	t.Helper()
	var n uint64
	var root tlog.Hash
	if err := f.db.View(func(txn *badger.Txn) (err error) {
		n, root, err = treeHead(txn)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n, root
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// wantCode checks that r is a single outcome with the given code.
func wantCode(t *testing.T, what string, r any, code string) outcome {
	t.Helper()
	o, ok := r.(outcome)
	if !ok || o.Code != code || o.Appended {
		t.Errorf("%s: Apply = %#v; want an outcome with code %q and nothing appended", what, r, code)
	}
	return o
}

// TestPoisonCommandID: a command whose ID is longer than any key badger
// takes, committed past the leader's checks, gets the same refusal on
// every replica; none halts, and the group goes on writing.
func TestPoisonCommandID(t *testing.T) {
	c := MakeCluster(t, 3)
	lead := c.Leader()
	c.appendAll(lead, 0, 3)
	e := entry(3)
	data := must(encodeCommand(&command{Op: opAppend, ID: strings.Repeat("x", 70_000), Entry: &e}))
	f := lead.l.raft.Apply(data, testWriteTimeout)
	if err := f.Error(); err != nil {
		t.Fatalf("commit the poison command: %v", err)
	}
	wantCode(t, "command ID of 70,000 bytes", f.Response(), codeTooLarge)
	c.converge()
	for _, r := range c.running() {
		if st := r.l.Status(); !st.Healthy || st.Size != 3 {
			t.Errorf("replica %s after the poison command: healthy %v (%v), %d entries; want healthy, 3", r.id, st.Healthy, st.Err, st.Size)
		}
	}
	c.appendAll(c.Leader(), 4, 2)
	c.converge()
	if st := c.Leader().l.Status(); st.Size != 5 {
		t.Errorf("size after two more appends = %d; want 5", st.Size)
	}
}

// TestLimitsBeforeReplication: a command over a limit is refused by the
// replica that submits it, before Raft sees it; one at the limit commits.
func TestLimitsBeforeReplication(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	ctx := context.Background()
	commit := l.Status().Commit
	over := map[string]func() error{
		"command ID": func() error {
			_, err := l.Append(WithCommandID(ctx, strings.Repeat("x", MaxCommandID+1)), entry(0))
			return err
		},
		"record value": func() error {
			_, err := l.Put(ctx, "ns", "k", make([]byte, MaxRecordValue+1))
			return err
		},
		"reservations": func() error {
			a := admission("r1", 1)
			for i := range MaxReservations + 1 {
				a.Reserve = append(a.Reserve, Reservation{Key: fmt.Sprintf("k%d", i), Amount: 1, Limit: 10})
			}
			_, err := l.Admit(ctx, a)
			return err
		},
		"outcome lookup": func() error {
			_, err := l.Outcome(strings.Repeat("x", MaxCommandID+1))
			return err
		},
	}
	for name, fn := range over {
		if err := fn(); !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s over its limit: %v; want ErrTooLarge (an ErrInvalid)", name, err)
		}
	}
	if got := l.Status().Commit; got != commit {
		t.Errorf("commit index moved from %d to %d: a refused command reached Raft", commit, got)
	}
	if _, err := l.Put(ctx, "ns", "k", make([]byte, MaxRecordValue)); err != nil {
		t.Errorf("Put of a value of MaxRecordValue bytes: %v", err)
	}
	if _, err := l.Append(WithCommandID(ctx, strings.Repeat("y", MaxCommandID)), entry(0)); err != nil {
		t.Errorf("Append with a command ID of MaxCommandID bytes: %v", err)
	}
}

// TestHugeRecordValue: a record value over the snapshot's limit, committed
// past the leader's checks, is refused in Apply, so the state still
// snapshots and restores on another replica.
func TestHugeRecordValue(t *testing.T) {
	a, b := testFSM(t), testFSM(t)
	e := entry(0)
	applyAt(a, 1, must(encodeCommand(&command{Op: opAppend, ID: "e0", Time: 1, Entry: &e})))
	huge := &command{Op: opPut, ID: "huge", Time: 2, NS: "ns", Key: "k", Value: make([]byte, maxSnapshotValue+1)}
	wantCode(t, "record value over 64 MiB", applyAt(a, 2, must(encodeCommand(huge))), codeTooLarge)
	if err := a.halted(); err != nil {
		t.Fatalf("halted: %v", err)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := b.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatalf("restore the snapshot on another replica: %v", err)
	}
	na, ra := fsmHead(t, a)
	nb, rb := fsmHead(t, b)
	if na != 1 || na != nb || ra != rb {
		t.Errorf("restored tree %d %x; want %d %x", nb, rb[:4], na, ra[:4])
	}
}

// TestEntryLimits: the limits of one Raft entry and of its commands hold
// in Apply, whatever the leader sent: each refused command gets the same
// outcome on every replica and the state machine goes on.
func TestEntryLimits(t *testing.T) {
	e := entry(0)
	members := func(n int) [][]byte {
		var ms [][]byte
		for i := range n {
			ms = append(ms, must(encodeCommand(&command{Op: opAppend, ID: fmt.Sprintf("m%d", i), Time: 1, Entry: &e})))
		}
		return ms
	}
	manyRes := &command{Op: opAdmit, ID: "res", Entry: &Entry{Header: Header{Type: TypeMatchIn, RequestID: "q1"}}}
	for i := range MaxReservations + 1 {
		manyRes.Reserve = append(manyRes.Reserve, Reservation{Key: fmt.Sprintf("k%d", i), Amount: 1, Limit: 10})
	}
	for _, tc := range []struct {
		name string
		data []byte
		code string
	}{
		{"batch of maxBatch+1", encodeBatch(members(maxBatch + 1)), codeTooLarge},
		{"reservations", must(encodeCommand(manyRes)), codeTooLarge},
		{"prune chunk", must(encodeCommand(&command{Op: opPrune, ID: "p", Entry: &e, Before: 1, Max: 1 << 30})), codeTooLarge},
		{"budget key", must(encodeCommand(&command{Op: opAdmit, ID: "bk", Entry: &Entry{Header: Header{Type: TypeMatchIn, RequestID: "q2"}},
			Reserve: []Reservation{{Key: strings.Repeat("k", 70_000), Amount: 1, Limit: 10}}})), codeTooLarge},
		{"record namespace", must(encodeCommand(&command{Op: opPut, ID: "ns", NS: strings.Repeat("n", 70_000), Key: "k"})), "invalid"},
		// The binary encoding cannot carry a field over MaxField; the JSON
		// of older logs can.
		{"request ID", must(jsonMarshal(&command{Op: opAdmit, ID: "rid", Entry: &Entry{Header: Header{Type: TypeMatchIn, RequestID: strings.Repeat("q", 70_000)}}})), "invalid"},
		{"command ID in JSON", must(jsonMarshal(&command{Op: opAppend, ID: strings.Repeat("x", 70_000), Entry: &e})), codeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := []*fsm{testFSM(t), testFSM(t)}
			var heads [2]tlog.Hash
			for i, f := range fs {
				r := applyAt(f, 1, tc.data)
				if out, ok := r.([]outcome); ok {
					for j, o := range out {
						if o.Code != tc.code || o.Appended {
							t.Errorf("member %d of %d: %+v; want code %q", j, len(out), o, tc.code)
							break
						}
					}
				} else {
					wantCode(t, tc.name, r, tc.code)
				}
				if err := f.halted(); err != nil {
					t.Fatalf("halted: %v", err)
				}
				if r := applyAt(f, 2, must(encodeCommand(&command{Op: opAppend, ID: "after", Time: 2, Entry: &e}))); r.(outcome).Code != "" {
					t.Errorf("append after the refusal: %+v", r)
				}
				_, heads[i] = fsmHead(t, f)
			}
			if heads[0] != heads[1] {
				t.Errorf("two replicas' roots differ: %x, %x", heads[0][:4], heads[1][:4])
			}
		})
	}
}

// TestBatchTooBigForOneTransaction: a batch entry whose commands together
// write more than one badger transaction takes is applied command by
// command, to the same state on every replica, rather than halting.
func TestBatchTooBigForOneTransaction(t *testing.T) {
	var ms [][]byte
	for i := range maxBatch {
		c := &command{Op: opAdmit, ID: fmt.Sprintf("a%d", i), Time: 1,
			Entry: &Entry{Header: Header{Type: TypeMatchIn, Outcome: OutcomeOK, RequestID: fmt.Sprintf("q%d", i)}}}
		for j := range MaxReservations {
			c.Reserve = append(c.Reserve, Reservation{Key: fmt.Sprintf("%04d/%s", j, strings.Repeat("k", MaxField/2)), Amount: 1, Limit: 1 << 20})
		}
		ms = append(ms, must(encodeCommand(c)))
	}
	data := encodeBatch(ms)
	fs := []*fsm{testFSM(t), testFSM(t)}
	var heads [2]tlog.Hash
	for i, f := range fs {
		r := applyAt(f, 1, data)
		if err := f.halted(); err != nil {
			t.Fatalf("halted: %v", err)
		}
		out, ok := r.([]outcome)
		if !ok || len(out) != maxBatch {
			t.Fatalf("Apply = %T; want %d outcomes", r, maxBatch)
		}
		for j, o := range out {
			if o.Code != "" || !o.Appended || o.Index != uint64(j) {
				t.Fatalf("outcome %d = %+v; want entry %d admitted", j, o, j)
			}
		}
		if m := f.meta(); m.applied != 1 || m.size != maxBatch {
			t.Errorf("meta = %+v; want applied 1, %d entries", m, maxBatch)
		}
		_, heads[i] = fsmHead(t, f)
	}
	if heads[0] != heads[1] {
		t.Errorf("two replicas' roots differ: %x, %x", heads[0][:4], heads[1][:4])
	}
}

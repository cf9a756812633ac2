package ledger

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// TestHaltOnStorageError: a state machine whose storage fails stops
// applying, reports the error and refuses everything after.
func TestHaltOnStorageError(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFSM(db, discard())
	if err != nil {
		t.Fatal(err)
	}
	cmd := func(id string) *raft.Log {
		e := entry(1)
		b, _ := jsonMarshal(&command{Op: opAppend, ID: id, Time: 1, Entry: &e})
		return &raft.Log{Index: 1, Type: raft.LogCommand, Data: b}
	}
	if r := f.Apply(cmd("a")); r.(outcome).Index != 0 {
		t.Fatalf("first Apply = %+v", r)
	}
	db.Close() // the disk goes away
	l2 := cmd("b")
	l2.Index = 2
	if r, ok := f.Apply(l2).(error); !ok || !errors.Is(r, ErrHalted) {
		t.Fatalf("Apply on a closed database = %v; want ErrHalted", r)
	}
	if f.halted() == nil {
		t.Fatal("state machine not halted after a storage error")
	}
	l3 := cmd("c")
	l3.Index = 3
	if r, ok := f.Apply(l3).(error); !ok || !errors.Is(r, ErrHalted) {
		t.Errorf("Apply after the halt = %v; want ErrHalted", r)
	}
	if m := f.meta(); m.applied != 1 || m.size != 1 {
		t.Errorf("meta after halt = %+v; want applied 1, one entry", m)
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
		t.Errorf("Snapshot after the halt = %v; want ErrHalted", err)
	}
}

// TestBatchEntry: a batch entry applies each command with its own ID and
// outcome; a command repeated inside the batch appends once; a nested
// batch is refused. Both encodings: binary, and JSON as logs written
// before it hold.
func TestBatchEntry(t *testing.T) {
	t.Run("binary", func(t *testing.T) { testBatchEntry(t, encodeCommand) })
	t.Run("json", func(t *testing.T) { testBatchEntry(t, func(c *command) ([]byte, error) { return jsonMarshal(c) }) })
}

func testBatchEntry(t *testing.T, encode func(*command) ([]byte, error)) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	e1, e2 := entry(1), entry(2)
	a := &command{Op: opAppend, ID: "a", Time: 1, Entry: &e1}
	batch := &command{Op: opBatch, ID: "outer", Batch: []*command{
		a,
		{Op: opAppend, ID: "b", Time: 2, Entry: &e2},
		a,
		{Op: opBatch, ID: "nested", Batch: []*command{{Op: opAppend, ID: "c", Entry: &e1}}},
	}}
	data, err := encode(batch)
	if err != nil {
		t.Fatal(err)
	}
	f := l.raft.Apply(data, testWriteTimeout)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	out, ok := f.Response().([]outcome)
	if !ok || len(out) != 4 {
		t.Fatalf("batch response %#v; want 4 outcomes", f.Response())
	}
	for i, want := range []outcome{
		{Index: 0, Appended: true},
		{Index: 1, Appended: true},
		{Index: 0, Appended: true},
		{Code: "invalid"},
	} {
		if out[i].Index != want.Index || out[i].Appended != want.Appended || out[i].Code != want.Code {
			t.Errorf("outcome %d = %+v; want %+v", i, out[i], want)
		}
	}
	if st := l.Status(); st.Size != 2 {
		t.Errorf("size after the batch = %d; want 2", st.Size)
	}
	if _, err := l.Outcome("c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Outcome of a command inside a nested batch = %v; want ErrNotFound", err)
	}
}

// TestTimeNeverBackwards: a clock that jumps back does not move entry time back.
func TestTimeNeverBackwards(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := newClock(t0)
	cfg := testConfig(t.TempDir())
	cfg.Now = clk.Now
	l := open(t, cfg)
	defer l.Close()
	appendN(t, l, 0, 1)
	clk.Set(t0.Add(-time.Hour))
	appendN(t, l, 1, 1)
	clk.Set(t0.Add(time.Minute))
	appendN(t, l, 2, 1)
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{t0, t0, t0.Add(time.Minute)}
	for i, e := range es {
		if !e.Time.Equal(want[i]) {
			t.Errorf("entry %d time %s; want %s", i, e.Time, want[i])
		}
	}
}

// fuzzSeeds are commands for FuzzApply: one of each operation, and the
// known poisons. A plain test run gets them at the sizes that halted every
// replica or broke snapshots (a command ID or budget key over badger's
// 65,000-byte keys, a record value over 64 MiB); fuzzing gets them just
// over the ledger's limits instead, since the engine minimizes an input
// byte by byte and stalls on inputs of tens of kilobytes.
func fuzzSeeds() [][]byte {
	fuzzing := false
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		fuzzing = true
	}
	idLen, keyLen, valueLen := 70_000, 70_000, maxSnapshotValue+1
	if fuzzing {
		idLen, keyLen, valueLen = MaxCommandID+1, MaxField+1, 0
	}
	e := entry(1)
	in := entry(2)
	in.Type, in.RequestID = TypeMatchIn, "q-1"
	prune := entry(3)
	prune.Type = TypePrune
	cmds := []*command{
		{Op: opAppend, ID: "append", Time: 10, Entry: &e},
		{Op: opAdmit, ID: "admit", Time: 20, Entry: &in, Reserve: []Reservation{{Key: "partner/FR/DAY", Amount: 1, Limit: 5}}, ReplayWindow: 1000},
		{Op: opPut, ID: "put", Time: 30, NS: "ns", Key: "k", Value: []byte("v")},
		{Op: opDelete, ID: "delete", Time: 40, NS: "ns", Key: "k"},
		{Op: opPrune, ID: "prune", Time: 50, Entry: &prune, Before: 25, Max: 2},
		{Op: opPrune, ID: "prune-more", Time: 60, Entry: &prune, Before: 25, Max: 1, Done: 1, After: []byte(pfxCommand + "b")},
		// Poisons: a command ID too long, too many reservations, a budget
		// key too long, a prune chunk over the limit.
		{Op: opAppend, ID: strings.Repeat("x", idLen), Entry: &e},
		{Op: opAdmit, ID: "res", Entry: &in, Reserve: make([]Reservation, MaxReservations+1)},
		{Op: opAdmit, ID: "bk", Entry: &in, Reserve: []Reservation{{Key: strings.Repeat("DAY/", keyLen/4+1), Amount: 1, Limit: 5}}},
		{Op: opPrune, ID: "prune-all", Entry: &prune, Before: 1 << 62, Max: 1 << 30},
	}
	if valueLen > 0 {
		// A record value over 64 MiB: no snapshot could carry it.
		cmds = append(cmds, &command{Op: opPut, ID: "huge", NS: "ns", Key: "k", Value: make([]byte, valueLen)})
	} else {
		// One over the limit would be 10 MiB: a value past the value
		// threshold (1 KiB) in its place.
		cmds = append(cmds, &command{Op: opPut, ID: "big", NS: "ns", Key: "k", Value: make([]byte, 1<<10)})
	}
	var seeds [][]byte
	var members [][]byte
	for _, c := range cmds {
		b := must(encodeCommand(c))
		seeds = append(seeds, b)
		if len(b) < 1<<10 {
			members = append(members, b)
		}
	}
	return append(seeds, encodeBatch(members), must(jsonMarshal(cmds[0])))
}

// memFSM opens a state machine on a badger state database in memory,
// with the options Open gives the state but every value up to 1 MiB in
// the LSM tree: in memory there is no value log, and badger v4.9.6 panics
// on a value past the threshold (fuzzed commands stay far below it, and
// values over the limits are refused before any write). The caller closes
// its database.
func memFSM(t testing.TB) *fsm {
	t.Helper()
	db, err := badger.Open(stateOptions(dbOptions("", nil, badgerLogger{discard()})).
		WithInMemory(true).WithDir("").WithValueDir("").WithValueThreshold(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFSM(db, discard())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return f
}

// clear deletes every key of f's database and reloads the empty state: a
// fresh store, as far as the state machine can tell, for a fraction of
// the cost of opening one.
func clear(t testing.TB, f *fsm) {
	t.Helper()
	wb := f.db.NewWriteBatch()
	defer wb.Cancel()
	if err := f.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.load(); err != nil {
		t.Fatal(err)
	}
}

// FuzzApply drives command bytes through Apply on two state machines on
// badger stores, as two replicas: no input halts either, and both end with
// the same state (meta, tree head). Each input meets the same state of a
// few commands (an append, an admission, a record; the stores are cleared
// between inputs, so a failure reproduces from its input alone) in the
// same batch of Raft entries, then comes again in a second batch (a retry,
// answered from its stored outcome) with an append that shows the state
// machine still applies. Two batches, two transactions a store: commits
// are what an input costs.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	e, in := entry(0), entry(1)
	in.Type, in.RequestID = TypeMatchIn, "q-0"
	prelude := [][]byte{
		must(encodeCommand(&command{Op: opAppend, ID: "p-append", Time: 1, Entry: &e})),
		must(encodeCommand(&command{Op: opAdmit, ID: "p-admit", Time: 2, Entry: &in, Reserve: []Reservation{{Key: "partner/FR/DAY", Amount: 1, Limit: 5}}})),
		must(encodeCommand(&command{Op: opPut, ID: "p-put", Time: 3, NS: "ns", Key: "k", Value: []byte("v")})),
	}
	after := must(encodeCommand(&command{Op: opAppend, ID: "after", Time: 100, Entry: &e}))
	// Cleared stores keep the tombstones of what they held, which clear
	// reads again: fresh ones every 100 inputs.
	var fs [2]*fsm
	runs := 0
	closeAll := func() {
		for _, s := range fs {
			if s != nil {
				s.db.Close()
			}
		}
	}
	f.Cleanup(closeAll)
	f.Fuzz(func(t *testing.T, data []byte) {
		if runs%100 == 0 || fs[0].halted() != nil || fs[1].halted() != nil {
			closeAll()
			fs = [2]*fsm{memFSM(t), memFSM(t)}
		}
		runs++
		for _, s := range fs {
			clear(t, s)
		}
		idx := uint64(0)
		logs := func(ds ...[]byte) []*raft.Log {
			var ls []*raft.Log
			for _, d := range ds {
				idx++
				ls = append(ls, &raft.Log{Index: idx, Type: raft.LogCommand, Data: d})
			}
			return ls
		}
		for _, batch := range [][]*raft.Log{logs(append(prelude, data)...), logs(data, after)} {
			for i, s := range fs {
				res := s.ApplyBatch(batch)
				if err := s.halted(); err != nil {
					t.Fatalf("replica %d halted: %v", i, err)
				}
				for j, r := range res {
					switch r.(type) {
					case outcome, []outcome:
					default:
						t.Fatalf("replica %d: entry %d: Apply = %#v; want an outcome", i, batch[j].Index, r)
					}
				}
			}
			if m0, m1 := fs[0].meta(), fs[1].meta(); m0 != m1 {
				t.Fatalf("replicas' state differ: %+v, %+v", m0, m1)
			}
			n0, r0 := fsmHead(t, fs[0])
			n1, r1 := fsmHead(t, fs[1])
			if n0 != n1 || r0 != r1 {
				t.Fatalf("replicas' trees differ: %d %x, %d %x", n0, r0[:4], n1, r1[:4])
			}
		}
		if m := fs[0].meta(); m.applied != idx || m.size < 2 {
			t.Fatalf("state after the input: %+v; want applied %d and the appends", m, idx)
		}
	})
}

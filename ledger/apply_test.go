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
// known poisons.
func fuzzSeeds() [][]byte {
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
		// Poisons: a command ID no key can hold, a record value over the
		// limit, too many reservations, a budget key no key can hold, a
		// prune chunk over the limit.
		{Op: opAppend, ID: strings.Repeat("x", 70_000), Entry: &e},
		{Op: opAdmit, ID: "res", Entry: &in, Reserve: make([]Reservation, MaxReservations+1)},
		{Op: opAdmit, ID: "bk", Entry: &in, Reserve: []Reservation{{Key: strings.Repeat("DAY/", 20_000), Amount: 1, Limit: 5}}},
		{Op: opPrune, ID: "prune-all", Entry: &prune, Before: 1 << 62, Max: 1 << 30},
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
	seeds = append(seeds, encodeBatch(members), must(jsonMarshal(cmds[0])))
	// A record value over the limit: only as a seed of a plain test run,
	// since the fuzzing engine stalls on mutating 10 MiB inputs
	// (TestHugeRecordValue applies one over 64 MiB).
	if f := flag.Lookup("test.fuzz"); f == nil || f.Value.String() == "" {
		seeds = append(seeds, must(encodeCommand(&command{Op: opPut, ID: "huge", NS: "ns", Key: "k", Value: make([]byte, MaxRecordValue+1)})))
	}
	return seeds
}

// memFSM opens a state machine on a badger state database in memory,
// with the options Open gives the state otherwise (a fresh one costs a few
// milliseconds; one on disk, about 20).
func memFSM(t testing.TB) *fsm {
	t.Helper()
	db, err := badger.Open(stateOptions(dbOptions("", nil, badgerLogger{discard()})).WithInMemory(true).WithDir("").WithValueDir(""))
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

// FuzzApply drives command bytes through Apply on two state machines on
// badger stores, as two replicas: no input halts either, and both end with
// the same state (meta, tree head). Each input meets a state of a few
// commands (an append, an admission, a record), is applied twice, at two
// Raft indexes (the second is a retry, answered from its stored outcome),
// then an append shows that the state machine still applies.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := [2]*fsm{memFSM(t), memFSM(t)}
		for idx, d := range append(prelude, data, data, after) {
			for i, s := range fs {
				r := applyAt(s, uint64(idx+1), d)
				if err := s.halted(); err != nil {
					t.Fatalf("replica %d halted at command %d (%d bytes): %v", i, idx+1, len(d), err)
				}
				switch r.(type) {
				case outcome, []outcome:
				default:
					t.Fatalf("replica %d: Apply = %#v; want an outcome", i, r)
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
	})
}

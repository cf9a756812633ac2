package ledger

import (
	"context"
	"errors"
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

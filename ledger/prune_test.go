package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestPrune: bodies older than the date go, the prune is an entry, a date
// inside the retention is refused, and the export still verifies.
func TestPrune(t *testing.T) {
	l, cfg, clk, t0 := openRetained(t)
	defer l.Close()
	appendN(t, l, 0, 6) // 2020-01-01
	clk.Set(t0.AddDate(0, 6, 0))
	appendN(t, l, 6, 4) // 2020-07-01
	clk.Set(t0.AddDate(1, 3, 0))

	if _, _, err := l.Prune(context.Background(), t0.AddDate(0, 6, 0), "dpo"); !errors.Is(err, ErrRetention) {
		t.Errorf("Prune inside the retention = %v; want ErrRetention", err)
	}
	r, n, err := l.Prune(context.Background(), t0.AddDate(0, 1, 0), "dpo")
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		wantPruned := e.Index < 6
		if e.Pruned != wantPruned || (e.Pruned && e.Body != (Body{})) {
			t.Errorf("entry %d pruned = %v, body %+v; want pruned %v", e.Index, e.Pruned, e.Body, wantPruned)
		}
	}
	last := es[len(es)-1]
	if !r.Appended || last.Index != r.Index || last.Type != TypePrune || last.Count != n || n < 6 || last.Body.Actor != "dpo" {
		t.Errorf("prune entry = %+v (receipt %+v, %d pruned); want a prune entry by dpo counting at least 6", last, r, n)
	}
	// Filters on body fields skip pruned entries.
	got, err := l.Entries(context.Background(), Filter{Actor: "officer-7"})
	if err != nil || len(got) != 4 {
		t.Errorf("Entries(actor officer-7) = %d entries, %v; want the 4 unpruned", len(got), err)
	}
	out := exportLedger(t, l)
	rep, err := verifyExport(out, l.VerifierKey(), nil)
	if err != nil {
		t.Fatalf("Verify after prune: %v", err)
	}
	if rep.Pruned != 6 || rep.Bodies != rep.Size-6 {
		t.Errorf("Verify report = %+v; want 6 pruned", rep)
	}
	// And the start check accepts pruned bodies.
	l.Close()
	l = open(t, cfg)
	if st := l.Status(); st.Size != rep.Size {
		t.Errorf("size after reopen %d; want %d", st.Size, rep.Size)
	}
}

// TestPruneReadsOnFromCursor: one prune command reads at most pruneScan
// command outcomes and request IDs; the next reads on from where it
// stopped, and the prune ends with every old key deleted, once.
func TestPruneReadsOnFromCursor(t *testing.T) {
	f := testFSM(t)
	e := entry(0)
	idx := uint64(0)
	apply := func(cmds []*command) any {
		var ms [][]byte
		for _, c := range cmds {
			ms = append(ms, must(encodeCommand(c)))
		}
		idx++
		return applyAt(f, idx, encodeBatch(ms))
	}
	var old []*command
	for i := range 5 {
		old = append(old, &command{Op: opAppend, ID: fmt.Sprintf("old-%d", i), Time: 1, Entry: &e})
	}
	apply(old)
	// A retention rule of 1 ns, so that the prune date of 500 ns below is
	// allowed at the command time of 2000 ns (the rule is checked in Apply);
	// its own outcome is newer than that date, so it is kept.
	apply([]*command{{Op: opRule, ID: "rule", Key: ruleRetention, Value: u64(1), Time: 1000}})
	// Newer outcomes than the date, more than one command reads.
	for b := 0; b < pruneScan+maxBatch; b += maxBatch {
		var cmds []*command
		for i := range maxBatch {
			cmds = append(cmds, &command{Op: opAppend, ID: fmt.Sprintf("new-%06d", b+i), Time: 1000, Entry: &e})
		}
		apply(cmds)
	}
	pe := entry(1)
	var after []byte
	var done uint64
	for n := 1; ; n++ {
		r := apply([]*command{{Op: opPrune, ID: fmt.Sprintf("prune-%d", n), Time: 2000, Entry: &pe, Before: 500, Max: pruneChunk, Done: done, After: after}})
		o := r.([]outcome)[0]
		if o.Code != "" {
			t.Fatalf("prune command %d: %+v", n, o)
		}
		if n == 1 && (!o.More || o.Cursor == nil) {
			t.Fatalf("first prune command = %+v; want More with a cursor (it may read only %d keys)", o, pruneScan)
		}
		done, after = o.Pruned, o.Cursor
		if !o.More {
			if !o.Appended || n != 2 || o.Pruned != 10 {
				t.Errorf("prune ended after %d commands, %d pruned (%+v); want 2 commands, 5 bodies and 5 outcomes", n, o.Pruned, o)
			}
			break
		}
		if n > 2 {
			t.Fatalf("prune not done after %d commands", n)
		}
	}
	if err := f.db.View(func(txn *badger.Txn) error {
		for i := range 5 {
			if _, ok, _ := getBytes(txn, []byte(fmt.Sprintf("%sold-%d", pfxCommand, i))); ok {
				t.Errorf("outcome of old-%d kept", i)
			}
		}
		_, ok, err := getBytes(txn, []byte(pfxCommand+"new-000000"))
		if !ok {
			t.Errorf("outcome of a newer command deleted")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

package ledger

import (
	"context"
	"errors"
	"testing"
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

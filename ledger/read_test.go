package ledger

import (
	"context"
	"testing"
	"time"
)

// TestReadIsLogged: Read appends a ledger_read entry before answering.
func TestReadIsLogged(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	appendN(t, l, 0, 6)
	es, r, err := l.Read(context.Background(), "auditor-9", "annual review", Filter{Case: "case-2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Body.CaseRef != "case-2" {
		t.Errorf("Read(case-2) = %d entries; want 1", len(es))
	}
	p, err := l.Entry(r.Index, 0)
	if err != nil || p.Entry.Type != TypeLedgerRead || p.Entry.Body.Actor != "auditor-9" {
		t.Errorf("read entry = %+v, %v; want a ledger_read by auditor-9", p.Entry, err)
	}
	got, err := l.Entries(context.Background(), Filter{Types: []Type{TypeLedgerRead}, Limit: 5})
	if err != nil || len(got) != 1 {
		t.Errorf("Entries(ledger_read) = %d, %v; want 1", len(got), err)
	}
	from := got[0].Time
	if got, _ := l.Entries(context.Background(), Filter{From: from.Add(time.Nanosecond)}); len(got) != 0 {
		t.Errorf("Entries(from after the last entry) = %d; want 0", len(got))
	}
}

package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRetentionRuleInApply: the retention is a replicated rule, set on any
// replica and read by all; a prune command whose date is inside it, sent
// straight to Raft past Prune's own check, is refused by Apply on every
// replica (outcome "retention", nothing pruned); Prune checks the rule,
// not the replica's Config.Retention.
func TestRetentionRuleInApply(t *testing.T) {
	c := MakeCluster(t, 3)
	lead := c.Leader()
	c.appendAll(lead, 0, 5)
	ctx := context.Background()
	// With no rule committed, Apply holds to DefaultRetention.
	rawPrune(t, lead.l, "raw-prune-default", time.Now().Add(-time.Hour))
	if _, err := c.followers()[0].l.SetRetention(ctx, time.Hour); err != nil {
		t.Fatalf("SetRetention through a follower: %v", err)
	}
	c.converge()
	for _, r := range c.running() {
		if got := r.l.Retention(); got != time.Hour {
			t.Errorf("replica %s Retention() = %v; want 1h", r.id, got)
		}
	}

	// Everything up to an hour from now: inside the retention.
	now := time.Now()
	rawPrune(t, c.Leader().l, "raw-prune", now.Add(time.Hour))
	c.converge()
	for _, r := range c.running() {
		for _, id := range []string{"raw-prune-default", "raw-prune"} {
			if _, err := r.l.Outcome(id); !errors.Is(err, ErrRetention) {
				t.Errorf("replica %s Outcome(%s) = %v; want ErrRetention", r.id, id, err)
			}
		}
		es, err := r.l.Entries(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Pruned {
				t.Errorf("replica %s: entry %d pruned by a prune inside the retention", r.id, e.Index)
			}
		}
		if st := r.l.Status(); st.Size != 5 {
			t.Errorf("replica %s has %d entries; want 5", r.id, st.Size)
		}
	}

	// Prune checks the rule (1 h), not Config.Retention (the 5-year default).
	lead = c.Leader()
	if _, _, err := lead.l.Prune(ctx, now.Add(-2*time.Hour), "dpo"); err != nil {
		t.Errorf("Prune two hours back with a one-hour rule: %v", err)
	}
	if _, _, err := lead.l.Prune(ctx, now.Add(time.Minute), "dpo"); !errors.Is(err, ErrRetention) {
		t.Errorf("Prune inside the one-hour rule = %v; want ErrRetention", err)
	}
	if _, err := lead.l.SetRetention(ctx, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetRetention(0) = %v; want ErrInvalid", err)
	}
}

// rawPrune commits, straight through the leader's Raft past Prune's own
// check, a prune command with the given ID and date, and checks that
// Apply refuses it for the retention.
func rawPrune(t *testing.T, l *Ledger, id string, before time.Time) {
	t.Helper()
	e := Entry{Header: Header{Type: TypePrune, Outcome: OutcomeOK}, Body: Body{Actor: "rogue", Purpose: "retention"}}
	if err := l.prepare(&e); err != nil {
		t.Fatal(err)
	}
	data, err := encodeCommand(&command{Op: opPrune, ID: id, Time: time.Now().UnixNano(), Entry: &e,
		Before: before.UnixNano(), Max: pruneChunk})
	if err != nil {
		t.Fatal(err)
	}
	f := l.raft.Apply(data, testWriteTimeout)
	if err := f.Error(); err != nil {
		t.Fatalf("raft Apply: %v", err)
	}
	if o, ok := f.Response().(outcome); !ok || o.Code != "retention" || o.Appended {
		t.Errorf("raw prune %s before %s: response %+v; want outcome code retention, nothing appended", id, before, f.Response())
	}
}

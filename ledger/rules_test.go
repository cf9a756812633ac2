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
	lead = c.Leader()
	e := Entry{Header: Header{Type: TypePrune, Outcome: OutcomeOK}, Body: Body{Actor: "rogue", Purpose: "retention"}}
	if err := lead.l.prepare(&e); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	data, err := encodeCommand(&command{Op: opPrune, ID: "raw-prune", Time: now.UnixNano(), Entry: &e,
		Before: now.Add(time.Hour).UnixNano(), Max: pruneChunk})
	if err != nil {
		t.Fatal(err)
	}
	f := lead.l.raft.Apply(data, testWriteTimeout)
	if err := f.Error(); err != nil {
		t.Fatalf("raft Apply: %v", err)
	}
	if o, ok := f.Response().(outcome); !ok || o.Code != "retention" || o.Appended {
		t.Errorf("raw prune inside the retention: response %+v; want outcome code retention, nothing appended", f.Response())
	}
	c.converge()
	for _, r := range c.running() {
		if _, err := r.l.Outcome("raw-prune"); !errors.Is(err, ErrRetention) {
			t.Errorf("replica %s Outcome(raw-prune) = %v; want ErrRetention", r.id, err)
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

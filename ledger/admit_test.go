package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func admission(rid string, amount uint64) Admission {
	e := entry(0)
	e.Type = TypeMatchIn
	e.RequestID = rid
	return Admission{
		Entry:         e,
		PolicyVersion: "",
		Reserve: []Reservation{
			{Key: "partner/FR/phone/DAY", Amount: amount, Limit: 50},
			{Key: "kind/phone/DAY", Amount: amount, Limit: 1000},
		},
	}
}

// TestAdmitBudget: 100 concurrent admissions of 1 against a budget of 50
// admit exactly 50 and append 50 denials.
func TestAdmitBudget(t *testing.T) {
	clk := newClock(time.Date(2026, 3, 4, 23, 59, 0, 0, time.UTC))
	cfg := testConfig(t.TempDir())
	cfg.Now = clk.Now
	l := open(t, cfg)
	defer l.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, denied := 0, 0
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := l.Admit(context.Background(), admission(fmt.Sprintf("q-%d", i), 1))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted++
			case errors.Is(err, ErrBudget) && r.Appended:
				denied++
			default:
				t.Errorf("Admit(q-%d) = %+v, %v; want admitted or ErrBudget with a denial", i, r, err)
			}
		}()
	}
	wg.Wait()
	if admitted != 50 || denied != 50 {
		t.Fatalf("admitted %d, denied %d; want 50 and 50", admitted, denied)
	}
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[Type]int{}
	for _, e := range es {
		counts[e.Type]++
		if e.Type == TypeDenial && e.Outcome != OutcomeDeniedBudget {
			t.Errorf("denial %d has outcome %s; want denied_budget", e.Index, e.Outcome)
		}
	}
	if counts[TypeMatchIn] != 50 || counts[TypeDenial] != 50 || len(es) != 100 {
		t.Errorf("ledger holds %v (%d entries); want 50 match_in and 50 denial", counts, len(es))
	}
	// The budget key carries the leader's UTC day: the next day starts afresh.
	clk.Set(clk.Now().Add(2 * time.Minute))
	if _, err := l.Admit(context.Background(), admission("next-day", 50)); err != nil {
		t.Errorf("Admit on the next UTC day = %v; want a fresh budget", err)
	}
	if _, err := l.Admit(context.Background(), admission("next-day-2", 1)); !errors.Is(err, ErrBudget) {
		t.Errorf("Admit over the next day's budget = %v; want ErrBudget", err)
	}
}

// TestAdmitRetryReplayPolicy: a retried command gets its first outcome and
// appends nothing; a new command with a spent request ID gets ErrReplay and
// a denial; a decision on a stale policy version gets ErrStalePolicy.
func TestAdmitRetryReplayPolicy(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	ctx := context.Background()
	size := func() uint64 { return l.Status().Size }

	first, err := l.Admit(WithCommandID(ctx, "cmd-1"), admission("q-1", 10))
	if err != nil {
		t.Fatalf("Admit(q-1): %v", err)
	}
	if first.CommandID != "cmd-1" {
		t.Errorf("receipt command ID %q; want cmd-1", first.CommandID)
	}
	before := size()
	again, err := l.Admit(WithCommandID(ctx, "cmd-1"), admission("q-1", 10))
	if err != nil || again.Index != first.Index || again.RaftIndex != first.RaftIndex {
		t.Errorf("retry of cmd-1 = %+v, %v; want the first outcome %+v", again, err, first)
	}
	if size() != before {
		t.Errorf("retry appended %d entries; want none", size()-before)
	}
	// The outcome is also there to look up (for a caller whose call failed).
	r, err := l.Outcome("cmd-1")
	if err != nil || r.Index != first.Index || !r.Appended {
		t.Errorf("Outcome(cmd-1) = %+v, %v; want index %d, no error", r, err, first.Index)
	}
	if _, err := l.Outcome("no-such-command"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Outcome(unknown) = %v; want ErrNotFound", err)
	}

	// A new command, same request ID: replay.
	r, err = l.Admit(ctx, admission("q-1", 1))
	if !errors.Is(err, ErrReplay) || !r.Appended {
		t.Fatalf("Admit of a spent request ID = %+v, %v; want ErrReplay with a denial", r, err)
	}
	if o, err := l.Outcome(r.CommandID); !errors.Is(err, ErrReplay) || o.Index != r.Index {
		t.Errorf("Outcome of the replayed command = %+v, %v; want its denial and ErrReplay", o, err)
	}
	p, err := l.Entry(r.Index, 0)
	if err != nil || p.Entry.Type != TypeDenial || p.Entry.Outcome != OutcomeDeniedReplay || p.Entry.RequestID != "q-1" {
		t.Errorf("replay denial entry = %+v, %v", p.Entry.Header, err)
	}
	// A retry of the replayed command returns the same denial, appends nothing.
	before = size()
	r2, err := l.Admit(WithCommandID(ctx, r.CommandID), admission("q-1", 1))
	if !errors.Is(err, ErrReplay) || r2.Index != r.Index || size() != before {
		t.Errorf("retry of the replay = %+v, %v, size +%d; want the same denial, nothing appended", r2, err, size()-before)
	}

	// Policy version in force is that of the last policy entry.
	if _, err := l.Append(ctx, Entry{Header: Header{Type: TypePolicy, Outcome: OutcomeOK, PolicyVersion: "v2"}}); err != nil {
		t.Fatal(err)
	}
	if got := l.Status().Policy; got != "v2" {
		t.Errorf("policy in force = %q; want v2", got)
	}
	if _, err := l.Admit(ctx, admission("q-2", 1)); !errors.Is(err, ErrStalePolicy) {
		t.Errorf("Admit on policy \"\" with v2 in force = %v; want ErrStalePolicy", err)
	}
	a := admission("q-3", 1)
	a.PolicyVersion = "v2"
	if _, err := l.Admit(ctx, a); err != nil {
		t.Errorf("Admit on v2 = %v; want admitted", err)
	}
	// Invalid input is refused before Raft.
	if _, err := l.Admit(ctx, admission("", 1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Admit without request ID = %v; want ErrInvalid", err)
	}
}

package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Reservation asks Admit to reserve Amount of the budget under Key, whose
// cap is Limit. Keys are opaque; each "DAY" path segment is replaced by
// the leader's UTC day (YYYY-MM-DD).
type Reservation struct {
	Key    string `json:"key"`
	Amount uint64 `json:"amount"`
	Limit  uint64 `json:"limit"`
}

// Admission is an inbound request to admit atomically.
type Admission struct {
	// Entry is appended when the request is admitted (usually TypeMatchIn
	// with OutcomeOK); RequestID is required.
	Entry Entry
	// PolicyVersion is the version the decision was made on; it must be
	// the version in force (that of the last policy entry; "" before any).
	PolicyVersion string
	// Reserve lists the budgets to reserve.
	Reserve []Reservation
	// ReplayWindow is how long a request ID stays spent. Zero:
	// DefaultReplayWindow.
	ReplayWindow time.Duration
}

// Admit checks the request ID against the replay window, the policy version
// in force, and reserves every budget, then appends a.Entry: all in one
// command. When it cannot, it appends a denial entry (same header, Type
// TypeDenial, an Outcome that says why) and returns its receipt with
// ErrReplay, ErrStalePolicy or ErrBudget. ErrNoQuorum means nothing is
// known: retry with the same command ID or look it up with Outcome.
func (l *Ledger) Admit(ctx context.Context, a Admission) (Receipt, error) {
	if err := l.prepare(&a.Entry); err != nil {
		return Receipt{}, fmt.Errorf("admit request: %w", err)
	}
	if a.Entry.RequestID == "" {
		return Receipt{}, fmt.Errorf("admit request: no request ID: %w", ErrInvalid)
	}
	for _, r := range a.Reserve {
		if err := checkField(r.Key); err != nil {
			return Receipt{}, fmt.Errorf("admit request: budget key: %w", err)
		}
	}
	if a.ReplayWindow == 0 {
		a.ReplayWindow = DefaultReplayWindow
	}
	if r, ok := l.defectAdmit(&a.Entry); ok {
		return r, nil
	}
	c := &command{Op: opAdmit, Entry: &a.Entry, PolicyVersion: a.PolicyVersion, Reserve: a.Reserve, ReplayWindow: int64(a.ReplayWindow)}
	o, err := l.submit(ctx, c)
	if err != nil && !o.Appended {
		return Receipt{}, fmt.Errorf("admit request: %w", err)
	}
	if err != nil {
		return o.receipt(c.ID), fmt.Errorf("admit request %s: %w", a.Entry.RequestID, err)
	}
	return o.receipt(c.ID), nil
}

// day replaces every DAY segment of a budget key with the UTC day of t.
func day(key string, t int64) string {
	segs := strings.Split(key, "/")
	d := time.Unix(0, t).UTC().Format("2006-01-02")
	for i, s := range segs {
		if s == "DAY" {
			segs[i] = d
		}
	}
	return strings.Join(segs, "/")
}

// admit checks the replay window, the policy version and the budgets, and
// appends either the entry or a denial.
func (f *fsm) admit(txn *badger.Txn, m *meta, c *command, o *outcome) error {
	if c.Entry == nil || c.Entry.validate() != nil || c.Entry.RequestID == "" {
		o.Code = "invalid"
		return nil
	}
	e := *c.Entry
	rk := []byte(pfxRequest + e.RequestID)
	seen, ok, err := getBytes(txn, rk)
	if err != nil {
		return err
	}
	deny := func(code string, out Outcome) error {
		o.Code = code
		d := e
		d.Type = TypeDenial
		d.Outcome = out
		o.Index, err = f.appendEntry(txn, m, d)
		o.Appended = true
		return err
	}
	if ok && len(seen) == 8 && m.time-int64(binary.BigEndian.Uint64(seen)) < c.ReplayWindow {
		return deny("replay", OutcomeDeniedReplay)
	}
	// From here on the request ID is spent, whatever the outcome: a signed
	// request denied today must not be admitted when budgets free up.
	if err := txn.Set(rk, u64(uint64(m.time))); err != nil {
		return err
	}
	if c.PolicyVersion != m.policy {
		return deny("stale_policy", OutcomeDeniedStalePolicy)
	}
	want := map[string]uint64{}
	limit := map[string]uint64{}
	for _, r := range c.Reserve {
		k := day(r.Key, m.time)
		if want[k]+r.Amount < want[k] {
			return deny("budget", OutcomeDeniedBudget) // amounts that overflow exceed any cap
		}
		want[k] += r.Amount
		if l, ok := limit[k]; !ok || r.Limit < l {
			limit[k] = r.Limit
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	used := make([]uint64, len(keys))
	for i, k := range keys {
		if used[i], err = getUint64(txn, pfxBudget+k); err != nil {
			return err
		}
		if used[i]+want[k] < used[i] || used[i]+want[k] > limit[k] {
			return deny("budget", OutcomeDeniedBudget)
		}
	}
	for i, k := range keys {
		if err := txn.Set([]byte(pfxBudget+k), u64(used[i]+want[k])); err != nil {
			return err
		}
	}
	o.Index, err = f.appendEntry(txn, m, e)
	o.Appended = true
	return err
}

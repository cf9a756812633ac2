package testnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// Outcomes of an operation of the workload.
const (
	OpOK      = "ok"      // the node answered and said it was done
	OpFailed  = "failed"  // the node refused it: nothing of it was acknowledged
	OpUnknown = "unknown" // no answer, or unavailable: it may or may not have taken effect
)

// Op is one operation of the chaos workload, with its invoke and complete
// times (milliseconds since the run began) and its outcome.
type Op struct {
	ID       int     `json:"id"`
	Agency   string  `json:"agency"`
	Client   int     `json:"client"`
	Kind     string  `json:"kind"` // query, read, export, import, remove, policy, rotate, submit, run-early, approve, repin, probe
	Replica  string  `json:"replica"`
	Invoke   float64 `json:"invoke_ms"`
	Complete float64 `json:"complete_ms"`
	Outcome  string  `json:"outcome"`
	Err      string  `json:"error,omitempty"`
	// A query: the kind asked and, per partner, what came back.
	QueryKind string                  `json:"query_kind,omitempty"`
	Partners  []httpapi.PartnerResult `json:"partners,omitempty"`
	values    []string                // canonical values asked (never reported)
	// A read: its purpose (a key no other read uses) and the entries it
	// returned (match_out, match_result, ledger_read).
	Purpose string      `json:"purpose,omitempty"`
	From    uint64      `json:"from,omitempty"` // the read's Filter.After
	Read    []readEntry `json:"-"`
	// An import or a removal: the rows of kind it sent, and how many the
	// node said it imported or removed.
	Rows int `json:"rows,omitempty"`
	Done int `json:"done,omitempty"`
	// A query that needs an approver (submit, run-early, approve, and the
	// approved run, a query): its ID, and the approver who approved it.
	QueryID  string `json:"query_id,omitempty"`
	Approver string `json:"approver,omitempty"`
	// A re-pin: the partner and the sequence of the card pinned.
	Partner  string `json:"partner,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
	// An export: the signed checkpoint it carried.
	Checkpoint string `json:"-"`
	Size       uint64 `json:"size,omitempty"`
	entries    string // entries.jsonl of an export
}

// readEntry is what the checker needs of one entry a read returned.
type readEntry struct {
	Index     uint64
	Type      ledger.Type
	RequestID string
	Purpose   string
}

// history collects the operations of a run. It is safe for concurrent use.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []*Op
}

func (h *history) ms(t time.Time) float64 { return float64(t.Sub(h.start).Microseconds()) / 1000 }

// begin records the invocation of an operation.
func (h *history) begin(agency string, client int, kind, replica string) *Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	op := &Op{ID: len(h.ops) + 1, Agency: agency, Client: client, Kind: kind, Replica: replica, Invoke: h.ms(time.Now())}
	h.ops = append(h.ops, op)
	return op
}

// end records the completion of op with err's outcome.
func (h *history) end(op *Op, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.Complete = h.ms(time.Now())
	op.Outcome = classify(err)
	if err != nil {
		op.Err = err.Error()
	}
}

// all returns the operations so far.
func (h *history) all() []*Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Op(nil), h.ops...)
}

// classify turns an API error into an outcome: a refusal the node
// answered (4xx) is failed; no answer, a timeout or unavailable (5xx) may
// have taken effect, so it is unknown.
func classify(err error) string {
	if err == nil {
		return OpOK
	}
	var ae *httpapi.Error
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 408 && ae.Status != 429 {
		return OpFailed
	}
	return OpUnknown
}

// workload runs the clients of every agency until ctx ends: per agency an
// investigator that queries every partner about planted identifiers, an
// auditor that reads the ledger, and one that exports it now and then, an
// admin that applies the policy or rotates the keys, a steward that
// imports and removes rows, an investigator and an approver that run
// queries that need an approval (chaosapprove.go), and an admin that
// re-pins a partner's card (chaospins.go).
type workload struct {
	net  *Net
	hist *history
	seed uint64
	// kinds are the kinds the investigators ask about.
	kinds []string
	// hard bounds every operation (an interrupt); the loops stop at the
	// end of the run, but an operation in flight then completes.
	hard context.Context

	mu     sync.Mutex
	cursor map[string]uint64   // per agency: the highest index a read showed
	held   map[string][]string // per agency: decoys imported and not removed yet
	// removed, per agency: the decoys of every acknowledged removal.
	removed map[string][]string
}

// stewardKind is the kind the stewards import and remove rows of: rows
// that no other agency holds and no query asks about, so the planted
// truth stays as it is.
const stewardKind = "email"

// readWindow is how far below the highest index seen so far a read
// starts: reads stay small however long the run, and still cover every
// append in flight.
const readWindow = 150

func (w *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	for ai, a := range w.net.Agencies {
		rng := rand.New(rand.NewPCG(w.seed, uint64(ai)+1))
		c0, c1, c2, c3, c4 := rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()
		c5, c6 := rng.Uint64(), rng.Uint64()
		wg.Go(func() { w.loop(ctx, a, 5, c5, w.approval, 5*time.Second) })
		wg.Go(func() { w.loop(ctx, a, 6, c6, w.repin, 10*time.Second) })
		wg.Go(func() { w.loop(ctx, a, 4, c4, w.steward, 3*time.Second) })
		wg.Go(func() { w.loop(ctx, a, 0, c0, w.query, 200*time.Millisecond) })
		wg.Go(func() { w.loop(ctx, a, 1, c1, w.read, time.Second) })
		wg.Go(func() { w.loop(ctx, a, 3, c3, w.admin, 15*time.Second) })
		wg.Go(func() {
			w.loop(ctx, a, 2, c2, func(ctx context.Context, rng *rand.Rand, a *AgencyNode, client, ri int) {
				w.export(ctx, rng, a, client, ri, false)
			}, 10*time.Second)
		})
	}
	wg.Wait()
}

// loop runs op on a random replica of a, a pause between runs, until ctx
// ends.
func (w *workload) loop(ctx context.Context, a *AgencyNode, client int, seed uint64, op func(context.Context, *rand.Rand, *AgencyNode, int, int), pause time.Duration) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for n := 0; ctx.Err() == nil; n++ {
		op(ctx, rng, a, client, rng.IntN(len(a.Replicas)))
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// opTimeout bounds one operation: longer than the node's own deadlines,
// so that an unknown outcome means the node did not answer.
const opTimeout = 45 * time.Second

func (w *workload) query(ctx context.Context, rng *rand.Rand, a *AgencyNode, client, ri int) {
	kind := w.kinds[rng.IntN(len(w.kinds))]
	var values []string
	for _, p := range w.net.Truth.Known(a.Code, kind) {
		values = append(values, p.Canonical)
	}
	if len(values) == 0 {
		return
	}
	c, err := a.Client(ri, "investigator")
	if err != nil {
		return
	}
	op := w.hist.begin(a.Code, client, "query", a.Replicas[ri].ID)
	op.QueryKind, op.values = kind, values
	qctx, cancel := context.WithTimeout(w.hard, opTimeout)
	defer cancel()
	res, err := c.Query(qctx, httpapi.QueryRequest{Kind: kind, Case: fmt.Sprintf("CHAOS-%d", op.ID), Basis: "testnet chaos: synthetic data",
		Offence: "thb", Purpose: "chaos workload", Values: values})
	if err == nil && res.Status != "done" {
		err = fmt.Errorf("query %s is %s", res.ID, res.Status)
	}
	op.Partners = res.Partners
	w.hist.end(op, err)
}

// admin applies the policy in force again (a new policy entry, the same
// rules) or rotates the OPRF keys (a new epoch: partners sync again), in
// turn.
func (w *workload) admin(_ context.Context, rng *rand.Rand, a *AgencyNode, client, ri int) {
	c, err := a.Client(ri, "admin")
	if err != nil {
		return
	}
	kind := "policy"
	if rng.IntN(2) == 0 {
		kind = "rotate"
	}
	op := w.hist.begin(a.Code, client, kind, a.Replicas[ri].ID)
	actx, cancel := context.WithTimeout(w.hard, opTimeout)
	defer cancel()
	if kind == "rotate" {
		_, err = c.RotateKeys(actx)
	} else {
		var pol, lim []byte
		if pol, err = os.ReadFile(filepath.Join(w.net.cfg.PolicyDir, "policy.cedar")); err == nil {
			lim, err = os.ReadFile(filepath.Join(w.net.cfg.PolicyDir, "limits.yaml"))
		}
		if err == nil {
			_, err = c.ApplyPolicy(actx, httpapi.PolicyFiles{PolicyName: "policy.cedar", Policy: string(pol), LimitsName: "limits.yaml", Limits: string(lim)})
		}
	}
	w.hist.end(op, err)
}

// steward imports 5 new rows of stewardKind, or removes the rows of an
// earlier import, in turn at random.
func (w *workload) steward(_ context.Context, rng *rand.Rand, a *AgencyNode, client, ri int) {
	c, err := a.Client(ri, "steward")
	if err != nil {
		return
	}
	w.mu.Lock()
	if w.held == nil {
		w.held = map[string][]string{}
	}
	held := w.held[a.Code]
	remove := len(held) > 0 && rng.IntN(2) == 0
	var rows []httpapi.Row
	if remove {
		for i, v := range held[:min(5, len(held))] {
			rows = append(rows, httpapi.Row{Line: i + 1, Value: v})
		}
		w.held[a.Code] = held[len(rows):]
	}
	w.mu.Unlock()
	kind := "remove"
	if !remove {
		kind = "import"
	}
	op := w.hist.begin(a.Code, client, kind, a.Replicas[ri].ID)
	if !remove {
		for i, v := range Decoys(w.seed, a.Code, stewardKind, 500000+uint64(op.ID)*10, 5) {
			rows = append(rows, httpapi.Row{Line: i + 1, Value: v})
		}
	}
	op.Rows = len(rows)
	sctx, cancel := context.WithTimeout(w.hard, opTimeout)
	defer cancel()
	if remove {
		var r httpapi.RemoveResult
		r, err = c.RemoveRows(sctx, httpapi.RemoveRows{Kind: stewardKind, Region: a.Code, Rows: rows})
		op.Done = r.Removed
		if err == nil {
			w.mu.Lock()
			if w.removed == nil {
				w.removed = map[string][]string{}
			}
			for _, r := range rows {
				w.removed[a.Code] = append(w.removed[a.Code], r.Value)
			}
			w.mu.Unlock()
		}
	} else {
		var im httpapi.Import
		im, err = c.BeginImport(sctx, httpapi.BeginImport{Kind: stewardKind, Region: a.Code})
		if err == nil {
			_, err = c.ImportRows(sctx, im.ID, rows)
		}
		if err == nil {
			var r httpapi.ImportResult
			r, err = c.CommitImport(sctx, im.ID, httpapi.CommitImport{})
			op.Done = r.Imported
		}
		if err == nil {
			var vs []string
			for _, r := range rows {
				vs = append(vs, r.Value)
			}
			w.mu.Lock()
			w.held[a.Code] = append(w.held[a.Code], vs...)
			w.mu.Unlock()
		}
	}
	w.hist.end(op, err)
}

// readTypes are the entries a read asks for: those the workload's own
// operations append (a query refused by this node's policy or budget is
// a denial under the query's request ID instead of its match_out).
var readTypes = []ledger.Type{ledger.TypeMatchOut, ledger.TypeDenial, ledger.TypeMatchResult, ledger.TypeLedgerRead}

func (w *workload) read(ctx context.Context, _ *rand.Rand, a *AgencyNode, client, ri int) {
	c, err := a.Client(ri, "auditor")
	if err != nil {
		return
	}
	w.mu.Lock()
	if w.cursor == nil {
		w.cursor = map[string]uint64{}
	}
	from := w.cursor[a.Code] - min(w.cursor[a.Code], readWindow)
	w.mu.Unlock()
	op := w.hist.begin(a.Code, client, "read", a.Replicas[ri].ID)
	op.Purpose, op.From = fmt.Sprintf("chaos read %d", op.ID), from
	rctx, cancel := context.WithTimeout(w.hard, opTimeout)
	defer cancel()
	es, err := c.Entries(rctx, op.Purpose, ledger.Filter{Types: readTypes, After: from})
	top := uint64(0)
	for _, e := range es {
		op.Read = append(op.Read, readEntry{Index: e.Index, Type: e.Type, RequestID: e.RequestID, Purpose: e.Body.Purpose})
		top = max(top, e.Index)
	}
	w.hist.end(op, err)
	w.mu.Lock()
	w.cursor[a.Code] = max(w.cursor[a.Code], top)
	w.mu.Unlock()
}

// export exports the ledger through replica ri and keeps its checkpoint,
// and its entries when keep is set (the final exports: the workload's
// would fill the memory of a long run).
func (w *workload) export(_ context.Context, _ *rand.Rand, a *AgencyNode, client, ri int, keep bool) *Op {
	c, err := a.Client(ri, "auditor")
	if err != nil {
		return nil
	}
	op := w.hist.begin(a.Code, client, "export", a.Replicas[ri].ID)
	ectx, cancel := context.WithTimeout(w.hard, opTimeout)
	defer cancel()
	x, err := c.Export(ectx)
	op.Checkpoint, op.Size = x.Checkpoint, uint64(strings.Count(x.Entries, "\n"))
	if keep {
		op.entries = x.Entries
	}
	w.hist.end(op, err)
	return op
}

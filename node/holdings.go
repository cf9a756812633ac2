package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// holdingEpochs is what the holdings need of the epochs (epochs.go).
type holdingEpochs interface {
	epochState() epochState
	signKeys(next uint64) ([]card.EpochKey, []byte, error)
	begin(ctx context.Context, actor string, st epochState, keys []card.EpochKey, rec []byte) error
}

// setBuilder is what the holdings need of the encoded sets (sets.go).
type setBuilder interface {
	computeAhead(k ident.Kind, key string, record []byte, rows []row)
	dropAhead(kind, id string)
	kickBuild()
	describe(kind string, epoch uint64, ks *httpapi.KindStats)
	setStats(kind string, epoch uint64, reach string) httpapi.SetStats
}

// holdings is the agency's holdings in the data group as this replica
// serves them to its users: imports (the sessions open on this replica,
// their batches, the manifests that make a committed import's batches
// part of each live epoch's set), removal and the erasure that follows
// it, statistics, key rotation (a base of every batch held for the new
// epoch) and the collection of orphan batches of abandoned imports.
//
// Held means committed: a row is held once a manifest references its
// batch (CommitImport, or the base of a rotation). The duplicate index
// holds exactly those rows; the rows of imports still open on this
// replica are in their sessions (seen), so that an import de-duplicates
// against itself and against concurrent ones without taking the rows of
// an abandoned import for held (docs/holdings.md, "Import").
//
// Its goroutines (the erase loop and the orphan loop) run from Start
// until Close.
type holdings struct {
	data     *raftGroup // batches, manifests, the erase record
	audit    *raftGroup // import and remove entries
	local    *badger.DB // x/erased: the last removal erased on this replica
	epochs   holdingEpochs
	sets     setBuilder
	policy   policyReader
	now      func() time.Time
	replica  string
	interval time.Duration
	log      *slog.Logger
	omet     *orphanMetrics

	mu      sync.Mutex
	imports map[string]*importSession
	index   map[string]map[string]struct{} // kind to canonical forms held (loaded lazily, see kindIndex)
	refs    map[string]map[string]struct{} // kind to the referenced batches read into index
	// orphansAt is when this replica last looked for orphan batches.
	orphansAt time.Time

	manifestMu sync.Mutex // serialises manifest changes on this replica
	erase      chan struct{}
	// compactWait bounds CompactData's wait; zero: CompactWait. Tests on
	// a loaded machine, under -race, wait longer.
	compactWait time.Duration
	stop        chan struct{}
	wg          sync.WaitGroup
}

// holdingsConfig is what newHoldings builds the holdings from.
type holdingsConfig struct {
	Data    *raftGroup
	Audit   *raftGroup
	Local   *badger.DB
	Epochs  holdingEpochs
	Sets    setBuilder
	Policy  policyReader
	Now     func() time.Time // nil: time.Now
	Replica string
	// Interval is how often the erase and orphan loops look for work.
	// Zero: 100 ms.
	Interval time.Duration
	Logger   *slog.Logger         // nil: discard
	Registry *prometheus.Registry // the orphan metrics are registered here
}

func newHoldings(c holdingsConfig) *holdings {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &holdings{data: c.Data, audit: c.Audit, local: c.Local, epochs: c.Epochs, sets: c.Sets, policy: c.Policy,
		now: now, replica: c.Replica, interval: max(c.Interval, 100*time.Millisecond),
		log: log.With("component", "holdings"), omet: newOrphanMetrics(c.Registry),
		imports: map[string]*importSession{}, index: map[string]map[string]struct{}{},
		erase: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Start starts the erase loop and the orphan loop.
func (h *holdings) Start() {
	h.wg.Add(2)
	go h.eraseLoop()
	go h.orphanLoop()
}

// Close stops the loops and returns when they have ended; the stores are
// the caller's to close. A nil *holdings (never built) closes as nothing.
func (h *holdings) Close() error {
	if h == nil {
		return nil
	}
	close(h.stop)
	h.wg.Wait()
	return nil
}

// decideKind asks the policy whether u may do action on kind.
func (h *holdings) decideKind(u httpapi.User, action, kind string) error {
	d := h.policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role},
		Action: action, Kind: kind, Time: h.now().UTC()})
	if d.Allow {
		return nil
	}
	ids := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		ids = append(ids, r.ID)
	}
	return fmt.Errorf("role %s may not %s %s under the policy in force (%v): %w", u.Role, action, kind, ids, httpapi.ErrForbidden)
}

func parseKind(s string) (ident.Kind, error) {
	k, err := ident.ParseKind(s)
	if err != nil {
		return 0, fmt.Errorf("kind %q: %w: %w", s, httpapi.ErrBadRequest, err)
	}
	return k, nil
}

// kindIndex returns the canonical forms held of kind: those of the
// batches some manifest references. It is loaded once per kind and
// brought up to date with the manifests on every call (reading only the
// batches not read before), so imports committed through other replicas
// and the base of a rotation count too. The caller holds h.mu.
func (h *holdings) kindIndex(kind string) (map[string]struct{}, error) {
	if h.refs == nil {
		h.refs = map[string]map[string]struct{}{}
	}
	idx, refs := h.index[kind], h.refs[kind]
	if idx == nil || refs == nil {
		idx, refs = map[string]struct{}{}, map[string]struct{}{}
		h.index[kind], h.refs[kind] = idx, refs
	}
	ref, err := h.referenced(kind + "/")
	if err != nil {
		return nil, fmt.Errorf("load holdings of %s: %w", kind, err)
	}
	for key := range ref {
		if _, ok := refs[key]; ok {
			continue
		}
		v, err := h.data.Get(nsRows, key)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("load holdings of %s: %w", kind, err)
		}
		rows, err := decodeRows(v)
		if err != nil {
			return nil, fmt.Errorf("load holdings of %s: batch %s: %w", kind, key, err)
		}
		for _, r := range rows {
			idx[heldKey(r.value, r.class)] = struct{}{}
		}
		refs[key] = struct{}{}
	}
	return idx, nil
}

// referenced returns the batches that a manifest (of any epoch) whose key
// starts with prefix ("" for all kinds, "<kind>/" for one) lists: the
// batches of committed imports.
func (h *holdings) referenced(prefix string) (map[string]struct{}, error) {
	out := map[string]struct{}{}
	err := h.data.Scan(nsManifest, prefix, func(key string, v []byte) error {
		var m manifest
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("manifest %s: %w", key, err)
		}
		for _, batches := range m.Versions {
			for _, b := range batches {
				out[b] = struct{}{}
			}
		}
		return nil
	})
	return out, err
}

// manifest reads the manifest of (kind, epoch); a missing one is returned
// empty with ErrNotFound.
func (h *holdings) manifest(kind string, epoch uint64) (manifest, error) {
	return readManifest(h.data, kind, epoch)
}

// RemoveRows erases identifiers of a kind from the data group at once:
// each batch holding one is rewritten without it (or deleted), so the
// identifier leaves the replicated state, then the snapshot, log
// truncation and value-log GC of docs/holdings.md erase it from disk.
// Then every live epoch gets a new base by decree (rebaseAfterRemoval):
// the served sets drop it once that base is built, partners' copies at
// their next sync.
func (h *holdings) RemoveRows(ctx context.Context, u httpapi.User, req httpapi.RemoveRows) (httpapi.RemoveResult, error) {
	var out httpapi.RemoveResult
	k, err := parseKind(req.Kind)
	if err != nil {
		return out, fmt.Errorf("remove rows: %w", err)
	}
	if err := h.decideKind(u, "import", req.Kind); err != nil {
		return out, fmt.Errorf("remove rows: %w", err)
	}
	if len(req.Rows) > MaxImportBatch {
		return out, fmt.Errorf("remove rows: %d rows, at most %d per call: %w", len(req.Rows), MaxImportBatch, httpapi.ErrBadRequest)
	}
	vals, _, errs := canonicalRows(k, ident.Options{Region: req.Region}, req.Rows)
	gone := map[string]struct{}{}
	for i, r := range req.Rows {
		if errs[i] != nil {
			out.Invalid = append(out.Invalid, httpapi.InvalidRow{Line: r.Line, Reason: errs[i].Error()})
			continue
		}
		gone[vals[i]] = struct{}{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	type rewrite struct {
		key  string
		rows []row
	}
	var writes []rewrite
	found := map[string]struct{}{}   // held keys: an identifier held in several reaches has one each
	removed := map[string]struct{}{} // canonical forms
	err = h.data.Scan(nsRows, req.Kind+"/", func(key string, v []byte) error {
		rows, err := decodeRows(v)
		if err != nil {
			return fmt.Errorf("batch %s: %w", key, err)
		}
		kept := rows[:0:0]
		for _, r := range rows {
			if _, ok := gone[r.value]; ok {
				found[heldKey(r.value, r.class)] = struct{}{}
				removed[r.value] = struct{}{}
				continue
			}
			kept = append(kept, r)
		}
		if len(kept) != len(rows) {
			writes = append(writes, rewrite{key, kept})
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("remove rows: %w", err)
	}
	for _, w := range writes {
		var err error
		if len(w.rows) == 0 {
			_, err = h.data.Delete(ctx, nsRows, w.key)
		} else {
			_, err = h.data.Put(ctx, nsRows, w.key, encodeRows(w.rows))
		}
		if err != nil {
			return out, fmt.Errorf("remove rows: %w", err)
		}
	}
	idx := h.index[req.Kind]
	for v := range found {
		delete(idx, v)
		for _, s := range h.imports {
			if s.kind == req.Kind {
				delete(s.seen, v)
			}
		}
	}
	out.Removed, out.NotHeld = len(removed), len(gone)-len(removed)
	st := h.epochs.epochState()
	if _, err := h.audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeRemove, Kind: req.Kind, Epoch: st.Current, Outcome: ledger.OutcomeOK,
			Count: uint64(out.Removed), Replica: h.replica},
		Body: ledger.Body{Actor: actorName(u), Purpose: "remove"},
	}); err != nil {
		return out, fmt.Errorf("remove rows: %w", err)
	}
	if len(writes) > 0 {
		// Sets built before and after the rewrite would differ: every
		// replica builds a new base of the rows as they are now.
		if err := h.rebaseAfterRemoval(ctx, req.Kind); err != nil {
			return out, fmt.Errorf("remove rows: %w", err)
		}
		h.sets.kickBuild()
		if _, err := h.requestErase(ctx); err != nil {
			return out, fmt.Errorf("remove rows: %w", err)
		}
	}
	return out, nil
}

// DataStats counts the holdings per kind and describes their sets. Rows
// counts the rows of the batches a manifest references (committed
// imports) and of the imports still open on this replica; orphan batches
// (of abandoned imports) are not counted.
func (h *holdings) DataStats(ctx context.Context, u httpapi.User) (httpapi.DataStats, error) {
	st := h.epochs.epochState()
	out := httpapi.DataStats{Epoch: st.Current, NextEpoch: st.Next, Kinds: []httpapi.KindStats{}, Sets: []httpapi.SetStats{}}
	counts, warned := map[string]int{}, map[string]int{}
	classes := map[string]map[string]int{}
	hinted, err := h.warningBatches()
	if err != nil {
		return out, fmt.Errorf("data stats: %w", err)
	}
	held, err := h.referenced("")
	if err != nil {
		return out, fmt.Errorf("data stats: %w", err)
	}
	now := h.now()
	h.mu.Lock()
	for _, s := range h.imports {
		if s.expired(now) {
			continue
		}
		for _, b := range s.batches {
			held[b] = struct{}{}
		}
	}
	h.mu.Unlock()
	err = h.data.Scan(nsRows, "", func(key string, v []byte) error {
		if _, ok := held[key]; !ok {
			return nil
		}
		kind, _, _ := strings.Cut(key, "/")
		c, per, err := countClasses(v)
		counts[kind] += c
		for cl, n := range per {
			if n > 0 {
				if classes[kind] == nil {
					classes[kind] = map[string]int{}
				}
				classes[kind][class(cl).String()] += n
			}
		}
		if err == nil && hinted[key] {
			var n int
			n, err = countWarnedRecord(kind, v)
			warned[kind] += n
		}
		return err
	})
	if err != nil {
		return out, fmt.Errorf("data stats: %w", err)
	}
	for _, k := range ident.Kinds() {
		kind := k.String()
		m, err := h.manifest(kind, st.Current)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return out, fmt.Errorf("data stats: %w", err)
		}
		if counts[kind] == 0 && len(m.Versions) == 0 {
			continue
		}
		ks := httpapi.KindStats{Kind: kind, Rows: counts[kind], Epoch: st.Current, Versions: len(m.Versions), Warnings: warned[kind],
			Classes: classes[kind]}
		h.sets.describe(kind, st.Current, &ks)
		out.Kinds = append(out.Kinds, ks)
		for _, e := range st.live() {
			if _, err := h.manifest(kind, e); err == nil {
				for _, reach := range setReaches {
					out.Sets = append(out.Sets, h.sets.setStats(kind, e, reach))
				}
			}
		}
	}
	sort.Slice(out.Sets, func(i, j int) bool {
		a, b := out.Sets[i], out.Sets[j]
		return a.Kind < b.Kind || a.Kind == b.Kind && (a.Epoch < b.Epoch || a.Epoch == b.Epoch && reachOrder(a.Reach) < reachOrder(b.Reach))
	})
	sort.Slice(out.Kinds, func(i, j int) bool { return out.Kinds[i].Kind < out.Kinds[j].Kind })
	return out, nil
}

// RotateKeys commits a new epoch: its public keys, signed by the agency
// key, go into the audit group (an epoch entry and a record) and into the
// card; every kind held gets a base set of the new epoch, built in the
// background by every replica; the current epoch keeps answering until
// the new one's sets are ready (epochs.finishEpoch).
func (h *holdings) RotateKeys(ctx context.Context, u httpapi.User) (httpapi.Rotation, error) {
	st := h.epochs.epochState()
	if st.Next != 0 {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: epoch %d is still being prepared; wait until it answers: %w", st.Next, httpapi.ErrConflict)
	}
	next := st.Current + 1
	keys, rec, err := h.epochs.signKeys(next)
	if err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	// The announcement comes first: an import committed before it is read
	// below, one committed after it reads it and joins the new epoch itself
	// (placeBatches).
	if err := h.announceRotation(ctx, next); err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	// Base sets of the new epoch: every batch held, per kind: stored and
	// referenced by a manifest (an import's batches are held once it is
	// committed; orphans of abandoned imports are not).
	held, err := h.referenced("")
	if err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	byKind := map[string][]string{}
	if err := h.data.Scan(nsRows, "", func(key string, _ []byte) error {
		if _, ok := held[key]; !ok {
			return nil
		}
		kind, _, _ := strings.Cut(key, "/")
		byKind[kind] = append(byKind[kind], key)
		return nil
	}); err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	for kind, batches := range byKind {
		if _, err := h.appendVersion(ctx, kind, next, batches); err != nil {
			return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
		}
	}
	if err := h.epochs.begin(ctx, actorName(u), st, keys, rec); err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	h.sets.kickBuild()
	return httpapi.Rotation{Epoch: st.Current, NextEpoch: next}, nil
}

package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// MaxImportBatch is the most rows one ImportRows call takes.
const MaxImportBatch = 20000

// importSession is an import in progress on this replica.
type importSession struct {
	id, kind, region, handling, actor string
	class                             class          // of rows that give none
	started, active                   time.Time      // h.now() at BeginImport and at the last call
	batches                           []string       // stored, in the order their commits returned
	sizes                             map[string]int // rows of each stored batch
	next                              int            // number of the next batch
	stored, duplicates, invalid       int
	warnings                          int  // rows stored with an ident warning
	strict                            bool // ident.Options.Strict
	// seen maps the canonical forms of this import (stored, being stored
	// or deferred) to the batch that holds them: one of its own, or the
	// other import's batch a deferred row waits on.
	seen map[string]string
	// deferred holds, per batch call of this import, the rows that a batch
	// of another import still open on this replica holds: they are held
	// only once one of the two is committed, so CommitImport settles them.
	deferred map[string][]deferredRow
}

// deferredRow is a row of an import that another open import stored
// first (in batch).
type deferredRow struct {
	row
	batch string
}

// BeginImport opens an import of req.Kind for user u (policy action import).
func (h *holdings) BeginImport(ctx context.Context, u httpapi.User, req httpapi.BeginImport) (httpapi.Import, error) {
	if _, err := parseKind(req.Kind); err != nil {
		return httpapi.Import{}, fmt.Errorf("begin import: %w", err)
	}
	if err := h.decideKind(u, "import", req.Kind); err != nil {
		return httpapi.Import{}, fmt.Errorf("begin import: %w", err)
	}
	if err := (ident.Options{Region: req.Region}).Validate(); err != nil {
		return httpapi.Import{}, fmt.Errorf("begin import: %w: %w", httpapi.ErrBadRequest, err)
	}
	cl, err := parseClass(req.Class)
	if err != nil {
		return httpapi.Import{}, fmt.Errorf("begin import: %w: %w", httpapi.ErrBadRequest, err)
	}
	switch req.Handling {
	case "":
		req.Handling = "H0"
	case "H0", "H1", "H2", "H3":
	default:
		return httpapi.Import{}, fmt.Errorf("begin import: handling %q is not H0 to H3: %w", req.Handling, httpapi.ErrBadRequest)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return httpapi.Import{}, fmt.Errorf("begin import: %w", err)
	}
	now := h.now()
	id := fmt.Sprintf("%016x%s", now.UnixNano(), hex.EncodeToString(rnd[:]))
	h.mu.Lock()
	h.imports[id] = &importSession{id: id, kind: req.Kind, region: req.Region, handling: req.Handling, strict: req.Strict, class: cl,
		actor: actorName(u), started: now, active: now, sizes: map[string]int{}, seen: map[string]string{},
		deferred: map[string][]deferredRow{}}
	h.mu.Unlock()
	return httpapi.Import{ID: id, Kind: req.Kind}, nil
}

// session returns the open import id of user u and marks it active. An
// import that outlived ImportIdle or ImportLifetime is closed instead.
func (h *holdings) session(u httpapi.User, id string) (*importSession, error) {
	now := h.now()
	h.mu.Lock()
	s := h.imports[id]
	if s != nil && s.expired(now) {
		h.closeSession(s)
		s = nil
	}
	if s != nil && s.actor == actorName(u) {
		s.active = now
	}
	h.mu.Unlock()
	if s == nil || s.actor != actorName(u) {
		return nil, fmt.Errorf("import %q is not open on this replica; start it again: %w", id, httpapi.ErrNotFound)
	}
	return s, nil
}

// canonicalRows canonicalises rows on all cores, in order, with the
// warning of each row that ident.Check accepts but warns of.
func canonicalRows(k ident.Kind, opt ident.Options, in []httpapi.Row) ([]string, []error, []error) {
	vals, warns, errs := make([]string, len(in)), make([]error, len(in)), make([]error, len(in))
	w := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for j := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := j; i < len(in); i += w {
				vals[i], warns[i], errs[i] = ident.Check(k, in[i].Value, opt)
				if errs[i] == nil && warns[i] != nil && opt.Strict {
					vals[i], errs[i], warns[i] = "", warns[i], nil
				}
			}
		}()
	}
	wg.Wait()
	return vals, warns, errs
}

// others returns the other imports of s's kind open on this replica.
// The caller holds h.mu.
func (h *holdings) others(s *importSession, now time.Time) []*importSession {
	var out []*importSession
	for _, o := range h.imports {
		if o != s && o.kind == s.kind && !o.expired(now) {
			out = append(out, o)
		}
	}
	return out
}

// openBatch returns the rows of batch if an import open on this replica
// stored it, else 0. The caller holds h.mu.
func (h *holdings) openBatch(batch string) int {
	_, id, ok := splitBatchKey(batch)
	if !ok {
		return 0
	}
	if s := h.imports[id]; s != nil {
		return s.sizes[batch]
	}
	return 0
}

// importPutTries bounds how often one batch of an import is submitted
// (always as the same ledger command) while the data group has no quorum.
const importPutTries = 3

// ImportRows canonicalises a batch, reports invalid rows by line, skips
// identifiers already held or already in this import, and stores the rest
// as one data-group record. A row that a batch of another import open on
// this replica holds is not stored again but deferred: CommitImport
// settles it (held by then, or taken over).
func (h *holdings) ImportRows(ctx context.Context, u httpapi.User, id string, rows []httpapi.Row) (httpapi.ImportRowsResult, error) {
	s, err := h.session(u, id)
	if err != nil {
		return httpapi.ImportRowsResult{}, fmt.Errorf("import rows: %w", err)
	}
	if len(rows) > MaxImportBatch {
		return httpapi.ImportRowsResult{}, fmt.Errorf("import rows: %d rows in one batch, at most %d: %w", len(rows), MaxImportBatch, httpapi.ErrBadRequest)
	}
	k, _ := ident.ParseKind(s.kind)
	vals, warns, errs := canonicalRows(k, ident.Options{Region: s.region, Strict: s.strict}, rows)
	var out httpapi.ImportRowsResult
	warned := 0 // rows of keep with a warning
	// The lock covers the duplicate check and the bookkeeping, not the
	// Raft commit, so that a client may send batches concurrently.
	h.mu.Lock()
	idx, err := h.kindIndex(s.kind)
	if err != nil {
		h.mu.Unlock()
		return out, fmt.Errorf("import rows: %w", err)
	}
	others := h.others(s, h.now())
	key := fmt.Sprintf("%s/%s/%06d", s.kind, s.id, s.next)
	s.next++
	var keep []row
	var later []deferredRow
	for i, r := range rows {
		if errs[i] != nil {
			out.Invalid = append(out.Invalid, httpapi.InvalidRow{Line: r.Line, Reason: errs[i].Error()})
			continue
		}
		if len(r.Ref) > 256 {
			out.Invalid = append(out.Invalid, httpapi.InvalidRow{Line: r.Line, Reason: "reference longer than 256 bytes"})
			continue
		}
		handling, reason := rowMeta(r, s.handling)
		if reason != "" {
			out.Invalid = append(out.Invalid, httpapi.InvalidRow{Line: r.Line, Reason: reason})
			continue
		}
		cl := s.class
		if r.Class != "" {
			if cl, err = parseClass(r.Class); err != nil {
				out.Invalid = append(out.Invalid, httpapi.InvalidRow{Line: r.Line, Reason: err.Error()})
				continue
			}
		}
		hk := heldKey(vals[i], cl)
		_, held := idx[hk]
		_, dup := s.seen[hk]
		if held || dup {
			out.Duplicates++
			continue
		}
		other := ""
		for _, o := range others {
			if b, ok := o.seen[hk]; ok {
				other = b
				break
			}
		}
		if other != "" {
			s.seen[hk] = other
			later = append(later, deferredRow{row: row{value: vals[i], ref: r.Ref, class: cl, contact: r.Contact, handling: handling}, batch: other})
			continue
		}
		s.seen[hk] = key
		keep = append(keep, row{value: vals[i], ref: r.Ref, class: cl, contact: r.Contact, handling: handling})
		if warns[i] != nil {
			out.Warnings = append(out.Warnings, httpapi.InvalidRow{Line: r.Line, Reason: warns[i].Error()})
			warned++
		}
	}
	if len(later) > 0 {
		s.deferred[key] = later
	}
	h.mu.Unlock()
	if len(keep) > 0 {
		rec := encodeRows(keep)
		if err := h.putBatch(ctx, s, key, rec); err != nil {
			// The rows are forgotten, so that the client may send them again.
			h.mu.Lock()
			for _, r := range keep {
				delete(s.seen, heldKey(r.value, r.class))
			}
			for _, r := range later {
				delete(s.seen, heldKey(r.value, r.class))
			}
			delete(s.deferred, key)
			h.mu.Unlock()
			return httpapi.ImportRowsResult{}, fmt.Errorf("import rows: %w", err)
		}
		h.sets.computeAhead(k, key, rec, keep)
		if err := h.markWarnings(ctx, key, warned); err != nil {
			h.log.Warn("record import warnings", "kind", s.kind, "import", s.id, "err", err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.warnings += len(out.Warnings)
	if len(keep) > 0 {
		s.batches = append(s.batches, key)
		s.sizes[key] = len(keep)
	}
	out.Stored = len(keep) + len(later)
	s.stored += out.Stored
	s.duplicates += out.Duplicates
	s.invalid += len(out.Invalid)
	return out, nil
}

// rowMeta checks a row's contact and handling code (issue 23) and returns
// its handling code (the import's when the row gives none), or why the
// row is invalid.
func rowMeta(r httpapi.Row, def string) (string, string) {
	switch {
	case len(r.Contact) > 256:
		return "", "contact longer than 256 bytes"
	case strings.IndexFunc(r.Contact, unicode.IsControl) >= 0 || !utf8.ValidString(r.Contact):
		return "", "contact holds control characters or invalid UTF-8: write it on one line"
	case strings.IndexFunc(r.Ref, unicode.IsControl) >= 0 || !utf8.ValidString(r.Ref):
		return "", "reference holds control characters or invalid UTF-8: write it on one line"
	case r.Handling == "":
		return def, ""
	case !validHandling(r.Handling):
		return "", fmt.Sprintf("handling code %q is not H0 to H3", r.Handling)
	}
	return r.Handling, ""
}

// putBatch stores one batch record of import s. One command ID per batch
// key: a Put that timed out without a quorum may still commit, so it is
// retried as the same command, which the ledger applies at most once.
func (h *holdings) putBatch(ctx context.Context, s *importSession, key string, rec []byte) error {
	pctx := ledger.WithCommandID(ctx, "rows/"+key)
	var err error
	for try := 0; try < importPutTries; try++ {
		_, err = h.data.Put(pctx, nsRows, key, rec)
		if err == nil || !errors.Is(err, ledger.ErrNoQuorum) || ctx.Err() != nil {
			break
		}
		h.log.Warn("import batch not committed yet, trying again", "kind", s.kind, "import", s.id, "try", try+1, "err", err)
	}
	return err
}

// settleDeferred decides, at commit, what becomes of the rows s deferred
// to other open imports: a row held by now is a duplicate; a whole
// stored batch of an open import whose every row s deferred is
// referenced by s as it is (a re-run of an abandoned import costs no new
// records); every other row is stored again as a batch of s. It returns
// the batches to reference and the rows to store. The caller holds
// h.mu.
func (h *holdings) settleDeferred(s *importSession, idx map[string]struct{}) (refer []string, store []row) {
	var open []deferredRow
	cover := map[string]int{}
	for _, rs := range s.deferred {
		for _, d := range rs {
			if _, held := idx[heldKey(d.value, d.class)]; held {
				s.stored--
				s.duplicates++
				continue
			}
			open = append(open, d)
			cover[d.batch]++
		}
	}
	clear(s.deferred)
	whole := map[string]bool{}
	for b, c := range cover {
		if size := h.openBatch(b); size > 0 && size == c {
			whole[b] = true
			refer = append(refer, b)
		}
	}
	sort.Strings(refer)
	for _, d := range open {
		if !whole[d.batch] {
			store = append(store, d.row)
		}
	}
	return refer, store
}

// CommitImport adds the import's batches as the next set version of every
// live epoch and records one import entry (kind and counts only).
func (h *holdings) CommitImport(ctx context.Context, u httpapi.User, id string, c httpapi.CommitImport) (httpapi.ImportResult, error) {
	s, err := h.session(u, id)
	if err != nil {
		return httpapi.ImportResult{}, fmt.Errorf("commit import: %w", err)
	}
	if c.Invalid < 0 {
		return httpapi.ImportResult{}, fmt.Errorf("commit import: negative invalid count: %w", httpapi.ErrBadRequest)
	}
	h.mu.Lock()
	s.invalid += c.Invalid
	idx, err := h.kindIndex(s.kind)
	if err != nil {
		h.mu.Unlock()
		return httpapi.ImportResult{}, fmt.Errorf("commit import: %w", err)
	}
	refer, store := h.settleDeferred(s, idx)
	s.batches = append(s.batches, refer...)
	var keys []string
	for lo := 0; lo < len(store); lo += MaxImportBatch {
		keys = append(keys, fmt.Sprintf("%s/%s/%06d", s.kind, s.id, s.next))
		s.next++
	}
	h.mu.Unlock()
	k, _ := ident.ParseKind(s.kind)
	for i, key := range keys {
		part := store[i*MaxImportBatch : min((i+1)*MaxImportBatch, len(store))]
		rec := encodeRows(part)
		if err := h.putBatch(ctx, s, key, rec); err != nil {
			// The rows not stored are deferred again, so a second commit
			// stores them.
			h.mu.Lock()
			for _, r := range store[i*MaxImportBatch:] {
				s.deferred[key] = append(s.deferred[key], deferredRow{row: r})
			}
			h.mu.Unlock()
			return httpapi.ImportResult{}, fmt.Errorf("commit import: %w", err)
		}
		h.sets.computeAhead(k, key, rec, part)
		if err := h.markWarnings(ctx, key, countWarned(k, part)); err != nil {
			h.log.Warn("record import warnings", "kind", s.kind, "import", s.id, "err", err)
		}
		h.mu.Lock()
		s.batches = append(s.batches, key)
		s.sizes[key] = len(part)
		h.mu.Unlock()
	}
	h.mu.Lock()
	stored, dups, invalid, batches := s.stored, s.duplicates, s.invalid, slices.Clone(s.batches)
	warnings := s.warnings
	h.mu.Unlock()
	res := httpapi.ImportResult{ID: s.id, Kind: s.kind, Imported: stored, Duplicates: dups, Invalid: invalid, Warnings: warnings}
	st := h.epochs.epochState()
	res.Epoch = st.Current
	if len(batches) > 0 {
		if res.Version, err = h.placeBatches(ctx, s.kind, st, batches); err != nil {
			return res, fmt.Errorf("commit import: %w", err)
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(batches, "\n")))
	if _, err := h.audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeImport, Kind: s.kind, Epoch: st.Current, SetVersion: uint64(res.Version),
			Outcome: ledger.OutcomeOK, Count: uint64(stored), Handling: s.handling, Replica: h.replica, Digest: sum},
		Body: ledger.Body{Actor: s.actor, Purpose: fmt.Sprintf("import: %d imported, %d duplicates, %d invalid",
			stored, dups, invalid)},
	}); err != nil {
		return res, fmt.Errorf("commit import: %w", err)
	}
	// The import's rows are held now: they move into the index.
	h.mu.Lock()
	idx, refs := h.index[s.kind], h.refs[s.kind]
	for v := range s.seen {
		idx[v] = struct{}{}
	}
	for _, b := range batches {
		refs[b] = struct{}{}
	}
	h.closeSession(s)
	h.mu.Unlock()
	h.sets.kickBuild()
	h.log.Info("import committed", "kind", s.kind, "imported", stored, "duplicates", dups, "invalid", invalid)
	return res, nil
}

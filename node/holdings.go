package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// Record namespaces of the data group. Holdings never enter the audit
// group: the audit ledger holds only counts and digests.
const (
	// nsRows: key <kind>/<import ID>/<batch %06d>; value: encodeRows of
	// the batch's canonical identifiers and references. One record per
	// batch, so that a million-row import is a few hundred Raft commands.
	nsRows = "rows"
	// nsManifest: key <kind>/<epoch %020d>; value: manifest JSON, the
	// batches each set version of that epoch adds.
	nsManifest = "manifest"
)

// MaxImportBatch is the most rows one ImportRows call takes.
const MaxImportBatch = 20000

// manifest lists the batches of each set version of one (kind, epoch):
// Versions[0] is the base (version 1), Versions[i] the delta of version
// i+1. Every replica builds the same bytes from it.
type manifest struct {
	Kind     string     `json:"kind"`
	Epoch    uint64     `json:"epoch"`
	Versions [][]string `json:"versions"`
}

func manifestKey(kind string, epoch uint64) string { return fmt.Sprintf("%s/%020d", kind, epoch) }

// row is one stored identifier.
type row struct {
	value string // canonical form
	ref   string // the agency's record reference, may be empty
}

// encodeRows writes rows as uvarint-prefixed strings.
func encodeRows(rows []row) []byte {
	var b []byte
	for _, r := range rows {
		b = binary.AppendUvarint(b, uint64(len(r.value)))
		b = append(b, r.value...)
		b = binary.AppendUvarint(b, uint64(len(r.ref)))
		b = append(b, r.ref...)
	}
	return b
}

// errRows: a stored batch does not decode.
var errRows = errors.New("stored rows do not decode")

// decodeRows reads what encodeRows wrote.
func decodeRows(b []byte) ([]row, error) {
	var out []row
	str := func() (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) || n > ident.MaxLen*16 {
			return "", errRows
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	for len(b) > 0 {
		v, err := str()
		if err != nil {
			return nil, err
		}
		r, err := str()
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, errRows
		}
		out = append(out, row{value: v, ref: r})
	}
	return out, nil
}

// importSession is an import in progress on this replica.
type importSession struct {
	id, kind, region, handling, actor string
	started, active                   time.Time      // n.now() at BeginImport and at the last call
	batches                           []string       // stored, in the order their commits returned
	sizes                             map[string]int // rows of each stored batch
	next                              int            // number of the next batch
	stored, duplicates, invalid       int
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

// holdings is the replica's state about its agency's holdings.
//
// Held means committed: a row is held once a manifest references its
// batch (CommitImport, or the base of a rotation). The duplicate index
// holds exactly those rows; the rows of imports still open on this
// replica are in their sessions (seen), so that an import de-duplicates
// against itself and against concurrent ones without taking the rows of
// an abandoned import for held (docs/holdings.md, "Import").
type holdings struct {
	mu      sync.Mutex
	imports map[string]*importSession
	index   map[string]map[string]struct{} // kind to canonical forms held (loaded lazily, see kindIndex)
	refs    map[string]map[string]struct{} // kind to the referenced batches read into index
	// orphansAt is when this replica last looked for orphan batches.
	orphansAt time.Time
	omet      *orphanMetrics
}

// decideKind asks the policy whether u may do action on kind.
func (n *Node) decideKind(u httpapi.User, action, kind string) error {
	d := n.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role},
		Action: action, Kind: kind, Time: n.now().UTC()})
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

// BeginImport opens an import of req.Kind for user u (policy action import).
func (n *Node) BeginImport(ctx context.Context, u httpapi.User, req httpapi.BeginImport) (httpapi.Import, error) {
	if _, err := parseKind(req.Kind); err != nil {
		return httpapi.Import{}, fmt.Errorf("begin import: %w", err)
	}
	if err := n.decideKind(u, "import", req.Kind); err != nil {
		return httpapi.Import{}, fmt.Errorf("begin import: %w", err)
	}
	if err := (ident.Options{Region: req.Region}).Validate(); err != nil {
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
	now := n.now()
	id := fmt.Sprintf("%016x%s", now.UnixNano(), hex.EncodeToString(rnd[:]))
	h := &n.hold
	h.mu.Lock()
	h.imports[id] = &importSession{id: id, kind: req.Kind, region: req.Region, handling: req.Handling,
		actor: actorName(u), started: now, active: now, sizes: map[string]int{}, seen: map[string]string{},
		deferred: map[string][]deferredRow{}}
	h.mu.Unlock()
	return httpapi.Import{ID: id, Kind: req.Kind}, nil
}

// session returns the open import id of user u and marks it active. An
// import that outlived ImportIdle or ImportLifetime is closed instead.
func (n *Node) session(u httpapi.User, id string) (*importSession, error) {
	now := n.now()
	n.hold.mu.Lock()
	s := n.hold.imports[id]
	if s != nil && s.expired(now) {
		n.closeSession(s)
		s = nil
	}
	if s != nil && s.actor == actorName(u) {
		s.active = now
	}
	n.hold.mu.Unlock()
	if s == nil || s.actor != actorName(u) {
		return nil, fmt.Errorf("import %q is not open on this replica; start it again: %w", id, httpapi.ErrNotFound)
	}
	return s, nil
}

// canonicalRows canonicalises rows on all cores, in order.
func canonicalRows(k ident.Kind, region string, in []httpapi.Row) ([]string, []error) {
	vals, errs := make([]string, len(in)), make([]error, len(in))
	w := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for j := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := j; i < len(in); i += w {
				vals[i], errs[i] = ident.Canonical(k, in[i].Value, ident.Options{Region: region})
			}
		}()
	}
	wg.Wait()
	return vals, errs
}

// kindIndex returns the canonical forms held of kind: those of the
// batches some manifest references. It is loaded once per kind and
// brought up to date with the manifests on every call (reading only the
// batches not read before), so imports committed through other replicas
// and the base of a rotation count too. The caller holds n.hold.mu.
func (n *Node) kindIndex(kind string) (map[string]struct{}, error) {
	h := &n.hold
	if h.refs == nil {
		h.refs = map[string]map[string]struct{}{}
	}
	idx, refs := h.index[kind], h.refs[kind]
	if idx == nil || refs == nil {
		idx, refs = map[string]struct{}{}, map[string]struct{}{}
		h.index[kind], h.refs[kind] = idx, refs
	}
	ref, err := n.referenced(kind + "/")
	if err != nil {
		return nil, fmt.Errorf("load holdings of %s: %w", kind, err)
	}
	for key := range ref {
		if _, ok := refs[key]; ok {
			continue
		}
		v, err := n.data.Get(nsRows, key)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("load holdings of %s: %w", kind, err)
		}
		rows, err := decodeRows(v)
		if err != nil {
			return nil, fmt.Errorf("load holdings of %s: batch %s: %w", kind, key, err)
		}
		for _, r := range rows {
			idx[r.value] = struct{}{}
		}
		refs[key] = struct{}{}
	}
	return idx, nil
}

// referenced returns the batches that a manifest (of any epoch) whose key
// starts with prefix ("" for all kinds, "<kind>/" for one) lists: the
// batches of committed imports.
func (n *Node) referenced(prefix string) (map[string]struct{}, error) {
	out := map[string]struct{}{}
	err := n.data.Scan(nsManifest, prefix, func(key string, v []byte) error {
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

// others returns the other imports of s's kind open on this replica.
// The caller holds n.hold.mu.
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
// stored it, else 0. The caller holds n.hold.mu.
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
func (n *Node) ImportRows(ctx context.Context, u httpapi.User, id string, rows []httpapi.Row) (httpapi.ImportRowsResult, error) {
	s, err := n.session(u, id)
	if err != nil {
		return httpapi.ImportRowsResult{}, fmt.Errorf("import rows: %w", err)
	}
	if len(rows) > MaxImportBatch {
		return httpapi.ImportRowsResult{}, fmt.Errorf("import rows: %d rows in one batch, at most %d: %w", len(rows), MaxImportBatch, httpapi.ErrBadRequest)
	}
	k, _ := ident.ParseKind(s.kind)
	vals, errs := canonicalRows(k, s.region, rows)
	var out httpapi.ImportRowsResult
	// The lock covers the duplicate check and the bookkeeping, not the
	// Raft commit, so that a client may send batches concurrently.
	n.hold.mu.Lock()
	idx, err := n.kindIndex(s.kind)
	if err != nil {
		n.hold.mu.Unlock()
		return out, fmt.Errorf("import rows: %w", err)
	}
	others := n.hold.others(s, n.now())
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
		_, held := idx[vals[i]]
		_, dup := s.seen[vals[i]]
		if held || dup {
			out.Duplicates++
			continue
		}
		other := ""
		for _, o := range others {
			if b, ok := o.seen[vals[i]]; ok {
				other = b
				break
			}
		}
		if other != "" {
			s.seen[vals[i]] = other
			later = append(later, deferredRow{row: row{value: vals[i], ref: r.Ref}, batch: other})
			continue
		}
		s.seen[vals[i]] = key
		keep = append(keep, row{value: vals[i], ref: r.Ref})
	}
	if len(later) > 0 {
		s.deferred[key] = later
	}
	n.hold.mu.Unlock()
	if len(keep) > 0 {
		rec := encodeRows(keep)
		if err := n.putBatch(ctx, s, key, rec); err != nil {
			// The rows are forgotten, so that the client may send them again.
			n.hold.mu.Lock()
			for _, r := range keep {
				delete(s.seen, r.value)
			}
			for _, r := range later {
				delete(s.seen, r.value)
			}
			delete(s.deferred, key)
			n.hold.mu.Unlock()
			return httpapi.ImportRowsResult{}, fmt.Errorf("import rows: %w", err)
		}
		n.computeAhead(k, key, rec, keep)
	}
	n.hold.mu.Lock()
	defer n.hold.mu.Unlock()
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

// putBatch stores one batch record of import s. One command ID per batch
// key: a Put that timed out without a quorum may still commit, so it is
// retried as the same command, which the ledger applies at most once.
func (n *Node) putBatch(ctx context.Context, s *importSession, key string, rec []byte) error {
	pctx := ledger.WithCommandID(ctx, "rows/"+key)
	var err error
	for try := 0; try < importPutTries; try++ {
		_, err = n.commit(GroupData, "put", func() (ledger.Receipt, error) {
			return n.data.Put(pctx, nsRows, key, rec)
		})
		if err == nil || !errors.Is(err, ledger.ErrNoQuorum) || ctx.Err() != nil {
			break
		}
		n.log.Warn("import batch not committed yet, trying again", "kind", s.kind, "import", s.id, "try", try+1, "err", err)
	}
	return err
}

// settleDeferred decides, at commit, what becomes of the rows s deferred
// to other open imports: a row held by now is a duplicate; a whole
// stored batch of an open import whose every row s deferred is
// referenced by s as it is (a re-run of an abandoned import costs no new
// records); every other row is stored again as a batch of s. It returns
// the batches to reference and the rows to store. The caller holds
// n.hold.mu.
func (n *Node) settleDeferred(s *importSession, idx map[string]struct{}) (refer []string, store []row) {
	var open []deferredRow
	cover := map[string]int{}
	for _, rs := range s.deferred {
		for _, d := range rs {
			if _, held := idx[d.value]; held {
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
		if size := n.hold.openBatch(b); size > 0 && size == c {
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
func (n *Node) CommitImport(ctx context.Context, u httpapi.User, id string, c httpapi.CommitImport) (httpapi.ImportResult, error) {
	s, err := n.session(u, id)
	if err != nil {
		return httpapi.ImportResult{}, fmt.Errorf("commit import: %w", err)
	}
	if c.Invalid < 0 {
		return httpapi.ImportResult{}, fmt.Errorf("commit import: negative invalid count: %w", httpapi.ErrBadRequest)
	}
	n.hold.mu.Lock()
	s.invalid += c.Invalid
	idx, err := n.kindIndex(s.kind)
	if err != nil {
		n.hold.mu.Unlock()
		return httpapi.ImportResult{}, fmt.Errorf("commit import: %w", err)
	}
	refer, store := n.settleDeferred(s, idx)
	s.batches = append(s.batches, refer...)
	var keys []string
	for lo := 0; lo < len(store); lo += MaxImportBatch {
		keys = append(keys, fmt.Sprintf("%s/%s/%06d", s.kind, s.id, s.next))
		s.next++
	}
	n.hold.mu.Unlock()
	k, _ := ident.ParseKind(s.kind)
	for i, key := range keys {
		part := store[i*MaxImportBatch : min((i+1)*MaxImportBatch, len(store))]
		rec := encodeRows(part)
		if err := n.putBatch(ctx, s, key, rec); err != nil {
			// The rows not stored are deferred again, so a second commit
			// stores them.
			n.hold.mu.Lock()
			for _, r := range store[i*MaxImportBatch:] {
				s.deferred[key] = append(s.deferred[key], deferredRow{row: r})
			}
			n.hold.mu.Unlock()
			return httpapi.ImportResult{}, fmt.Errorf("commit import: %w", err)
		}
		n.computeAhead(k, key, rec, part)
		n.hold.mu.Lock()
		s.batches = append(s.batches, key)
		s.sizes[key] = len(part)
		n.hold.mu.Unlock()
	}
	n.hold.mu.Lock()
	stored, dups, invalid, batches := s.stored, s.duplicates, s.invalid, slices.Clone(s.batches)
	n.hold.mu.Unlock()
	res := httpapi.ImportResult{ID: s.id, Kind: s.kind, Imported: stored, Duplicates: dups, Invalid: invalid}
	st := n.epochState()
	res.Epoch = st.Current
	if len(batches) > 0 {
		for _, e := range st.live() {
			v, err := n.addVersion(ctx, s.kind, e, batches)
			if err != nil {
				return res, fmt.Errorf("commit import: %w", err)
			}
			if e == st.Current {
				res.Version = v
			}
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(batches, "\n")))
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypeImport, Kind: s.kind, Epoch: st.Current, SetVersion: uint64(res.Version),
				Outcome: ledger.OutcomeOK, Count: uint64(stored), Handling: s.handling, Replica: n.fc.ReplicaID(), Digest: sum},
			Body: ledger.Body{Actor: s.actor, Purpose: fmt.Sprintf("import: %d imported, %d duplicates, %d invalid",
				stored, dups, invalid)},
		})
	}); err != nil {
		return res, fmt.Errorf("commit import: %w", err)
	}
	// The import's rows are held now: they move into the index.
	n.hold.mu.Lock()
	idx, refs := n.hold.index[s.kind], n.hold.refs[s.kind]
	for v := range s.seen {
		idx[v] = struct{}{}
	}
	for _, b := range batches {
		refs[b] = struct{}{}
	}
	n.closeSession(s)
	n.hold.mu.Unlock()
	n.kickBuild()
	n.log.Info("import committed", "kind", s.kind, "imported", stored, "duplicates", dups, "invalid", invalid)
	return res, nil
}

// addVersion appends batches as a new version of the (kind, epoch)
// manifest and returns the version. Manifest changes are serialised on
// this replica.
func (n *Node) addVersion(ctx context.Context, kind string, epoch uint64, batches []string) (int, error) {
	n.manifestMu.Lock()
	defer n.manifestMu.Unlock()
	m, err := n.manifest(kind, epoch)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return 0, err
	}
	m.Versions = append(m.Versions, batches)
	b, _ := json.Marshal(m)
	if _, err := n.commit(GroupData, "put", func() (ledger.Receipt, error) {
		return n.data.Put(ctx, nsManifest, manifestKey(kind, epoch), b)
	}); err != nil {
		return 0, fmt.Errorf("record set version: %w", err)
	}
	return len(m.Versions), nil
}

// manifest reads the manifest of (kind, epoch); a missing one is returned
// empty with ErrNotFound.
func (n *Node) manifest(kind string, epoch uint64) (manifest, error) {
	m := manifest{Kind: kind, Epoch: epoch}
	b, err := n.data.Get(nsManifest, manifestKey(kind, epoch))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest of %s epoch %d: %w", kind, epoch, err)
	}
	return m, nil
}

// RemoveRows erases identifiers of a kind from the data group at once:
// each batch holding one is rewritten without it (or deleted), so the
// identifier leaves the replicated state, then the snapshot, log
// truncation and value-log GC of docs/holdings.md erase it from disk.
// Encoded sets of the current epoch keep it until the next epoch.
func (n *Node) RemoveRows(ctx context.Context, u httpapi.User, req httpapi.RemoveRows) (httpapi.RemoveResult, error) {
	var out httpapi.RemoveResult
	k, err := parseKind(req.Kind)
	if err != nil {
		return out, fmt.Errorf("remove rows: %w", err)
	}
	if err := n.decideKind(u, "import", req.Kind); err != nil {
		return out, fmt.Errorf("remove rows: %w", err)
	}
	if len(req.Rows) > MaxImportBatch {
		return out, fmt.Errorf("remove rows: %d rows, at most %d per call: %w", len(req.Rows), MaxImportBatch, httpapi.ErrBadRequest)
	}
	vals, errs := canonicalRows(k, req.Region, req.Rows)
	gone := map[string]struct{}{}
	for i, r := range req.Rows {
		if errs[i] != nil {
			out.Invalid = append(out.Invalid, httpapi.InvalidRow{Line: r.Line, Reason: errs[i].Error()})
			continue
		}
		gone[vals[i]] = struct{}{}
	}
	n.hold.mu.Lock()
	defer n.hold.mu.Unlock()
	type rewrite struct {
		key  string
		rows []row
	}
	var writes []rewrite
	found := map[string]struct{}{}
	err = n.data.Scan(nsRows, req.Kind+"/", func(key string, v []byte) error {
		rows, err := decodeRows(v)
		if err != nil {
			return fmt.Errorf("batch %s: %w", key, err)
		}
		kept := rows[:0:0]
		for _, r := range rows {
			if _, ok := gone[r.value]; ok {
				found[r.value] = struct{}{}
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
		_, err := n.commit(GroupData, "put", func() (ledger.Receipt, error) {
			if len(w.rows) == 0 {
				return n.data.Delete(ctx, nsRows, w.key)
			}
			return n.data.Put(ctx, nsRows, w.key, encodeRows(w.rows))
		})
		if err != nil {
			return out, fmt.Errorf("remove rows: %w", err)
		}
	}
	idx := n.hold.index[req.Kind]
	for v := range found {
		delete(idx, v)
		for _, s := range n.hold.imports {
			if s.kind == req.Kind {
				delete(s.seen, v)
			}
		}
	}
	out.Removed, out.NotHeld = len(found), len(gone)-len(found)
	st := n.epochState()
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypeRemove, Kind: req.Kind, Epoch: st.Current, Outcome: ledger.OutcomeOK,
				Count: uint64(out.Removed), Replica: n.fc.ReplicaID()},
			Body: ledger.Body{Actor: actorName(u), Purpose: "remove"},
		})
	}); err != nil {
		return out, fmt.Errorf("remove rows: %w", err)
	}
	if len(writes) > 0 {
		if _, err := n.commit(GroupData, "put", func() (ledger.Receipt, error) {
			return n.data.Put(ctx, nsErase, "last", []byte(fmt.Sprintf("%d", n.now().UnixNano())))
		}); err != nil {
			return out, fmt.Errorf("remove rows: %w", err)
		}
		n.kickErase()
	}
	return out, nil
}

// DataStats counts the holdings per kind and describes their sets. Rows
// counts the rows of the batches a manifest references (committed
// imports) and of the imports still open on this replica; orphan batches
// (of abandoned imports) are not counted.
func (n *Node) DataStats(ctx context.Context, u httpapi.User) (httpapi.DataStats, error) {
	st := n.epochState()
	out := httpapi.DataStats{Epoch: st.Current, NextEpoch: st.Next, Kinds: []httpapi.KindStats{}}
	counts := map[string]int{}
	held, err := n.referenced("")
	if err != nil {
		return out, fmt.Errorf("data stats: %w", err)
	}
	now := n.now()
	n.hold.mu.Lock()
	for _, s := range n.hold.imports {
		if s.expired(now) {
			continue
		}
		for _, b := range s.batches {
			held[b] = struct{}{}
		}
	}
	n.hold.mu.Unlock()
	err = n.data.Scan(nsRows, "", func(key string, v []byte) error {
		if _, ok := held[key]; !ok {
			return nil
		}
		kind, _, _ := strings.Cut(key, "/")
		c, err := countRows(v)
		counts[kind] += c
		return err
	})
	if err != nil {
		return out, fmt.Errorf("data stats: %w", err)
	}
	for _, k := range ident.Kinds() {
		kind := k.String()
		m, err := n.manifest(kind, st.Current)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return out, fmt.Errorf("data stats: %w", err)
		}
		if counts[kind] == 0 && len(m.Versions) == 0 {
			continue
		}
		ks := httpapi.KindStats{Kind: kind, Rows: counts[kind], Epoch: st.Current, Versions: len(m.Versions)}
		if ls := n.sets.get(kind, st.Current); ls != nil {
			ls.mu.Lock()
			ks.Built = len(ls.segments)
			ks.Full = ls.full
			if ls.view != nil {
				ks.Entries = ls.view.Entries()
			}
			if len(ls.bases) > 0 {
				ks.Digest = hex.EncodeToString(ls.digests[ls.bases[len(ls.bases)-1]][:])
			}
			ls.mu.Unlock()
		}
		out.Kinds = append(out.Kinds, ks)
	}
	sort.Slice(out.Kinds, func(i, j int) bool { return out.Kinds[i].Kind < out.Kinds[j].Kind })
	return out, nil
}

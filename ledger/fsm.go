package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// Command operations.
const (
	opAppend = "append"
	opAdmit  = "admit"
	opPut    = "put"
	opDelete = "delete"
	opPrune  = "prune"
	// opBatch carries several commands in one Raft entry (group commit,
	// made by the leader); each keeps its own ID, time and outcome.
	opBatch = "batch"
)

// command is what goes through Raft, in the binary encoding of codec.go
// (encodeCommand). The JSON tags read commands that logs and snapshots
// written before that encoding hold (decodeJSONCommand).
type command struct {
	Op   string `json:"op"`
	ID   string `json:"id"`   // command ID: a retry with the same ID gets the first outcome
	Time int64  `json:"time"` // the leader's time, Unix ns (clamped in Apply)

	Entry *Entry `json:"entry,omitempty"` // append, admit, prune (the prune entry)

	// admit
	PolicyVersion string        `json:"policy_version,omitempty"`
	Reserve       []Reservation `json:"reserve,omitempty"`
	ReplayWindow  int64         `json:"replay_window,omitempty"` // ns

	// put, delete
	NS    string `json:"ns,omitempty"`
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`

	// prune
	Before int64  `json:"before,omitempty"` // Unix ns
	Max    int    `json:"max,omitempty"`    // most bodies deleted by this command
	Done   uint64 `json:"done,omitempty"`   // bodies pruned by earlier commands of the same prune

	// batch
	Batch []*command `json:"batch,omitempty"`
}

// outcome is what Apply returns for a command and keeps under its ID.
type outcome struct {
	Index     uint64 `json:"index"`      // ledger index of the entry appended (append, admit)
	Appended  bool   `json:"appended"`   // whether an entry was appended
	RaftIndex uint64 `json:"raft_index"` // raft index of the command
	Time      int64  `json:"time"`       // clamped command time
	Code      string `json:"code,omitempty"`
	Pruned    uint64 `json:"pruned,omitempty"` // prune: bodies pruned so far
	More      bool   `json:"more,omitempty"`   // prune: bodies left before the date
}

// Outcome codes and their sentinel errors.
var codeErrors = map[string]error{
	"replay":       ErrReplay,
	"stale_policy": ErrStalePolicy,
	"budget":       ErrBudget,
	"invalid":      ErrInvalid,
}

func (o outcome) err() error {
	if o.Code == "" {
		return nil
	}
	if err, ok := codeErrors[o.Code]; ok {
		return err
	}
	return fmt.Errorf("command failed: %s", o.Code)
}

// meta is the replicated state the state machine keeps in memory too.
type meta struct {
	applied uint64
	size    uint64
	time    int64
	policy  string
	pruned  uint64
}

// fsm is the Raft state machine on badger. Apply is deterministic: its
// writes depend only on the state and the command, never on the replica's
// clock or randomness. A storage error halts it for good (halted): it then
// applies nothing and every write fails, so that the replica never diverges.
type fsm struct {
	db  *badger.DB
	log *slog.Logger

	mu   sync.RWMutex // guards m
	m    meta
	halt atomic.Pointer[error]

	// edge is the tree's edge as committed; work, the edge of the
	// transaction being applied. Both belong to Raft's apply goroutine
	// (Apply, ApplyBatch, Restore) and to newFSM before it.
	edge, work edge

	skipped atomic.Uint64 // commands at or below the applied index (replays)
	applied chan struct{} // closed and replaced whenever m.applied moves
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(db *badger.DB, log *slog.Logger) (*fsm, error) {
	f := &fsm{db: db, log: log, applied: make(chan struct{})}
	if err := migrateRecords(db, log); err != nil {
		return nil, err
	}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *fsm) load() error {
	var m meta
	err := f.db.View(func(txn *badger.Txn) error {
		var err error
		if m.applied, err = getUint64(txn, keyApplied); err != nil {
			return err
		}
		if m.size, err = getUint64(txn, keySize); err != nil {
			return err
		}
		t, err := getUint64(txn, keyTime)
		if err != nil {
			return err
		}
		m.time = int64(t)
		if m.pruned, err = getUint64(txn, keyPruned); err != nil {
			return err
		}
		p, _, err := getBytes(txn, []byte(keyPolicy))
		m.policy = string(p)
		return err
	})
	if err != nil {
		return fmt.Errorf("load ledger state: %w", err)
	}
	f.edge, f.work = edge{}, edge{}
	f.mu.Lock()
	f.m = m
	f.notifyLocked()
	f.mu.Unlock()
	return nil
}

func (f *fsm) notifyLocked() {
	close(f.applied)
	f.applied = make(chan struct{})
}

func (f *fsm) meta() meta {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.m
}

// halted returns the error that halted the state machine, or nil.
func (f *fsm) halted() error {
	if p := f.halt.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *fsm) stop(err error) {
	err = fmt.Errorf("%w: %w", ErrHalted, err)
	if f.halt.CompareAndSwap(nil, &err) {
		f.log.Error("ledger state machine halted: this replica applies nothing more until restarted", "err", err)
	}
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: the whole batch and the last
// applied index go into one badger transaction. A batch too big for one
// transaction is split in halves.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	res := make([]any, len(logs))
	if err := f.halted(); err == nil {
		if err := f.applyRange(logs, res); err != nil {
			f.stop(err)
		}
	}
	if err := f.halted(); err != nil {
		for i := range res {
			if res[i] == nil {
				res[i] = err
			}
		}
	}
	return res
}

func (f *fsm) applyRange(logs []*raft.Log, res []any) error {
	m := f.meta()
	f.work = f.edge
	txn := f.db.NewTransaction(true)
	defer txn.Discard()
	skipped := uint64(0)
	for i, l := range logs {
		if l.Index <= m.applied {
			skipped++
			res[i] = errReplayed
			continue
		}
		if l.Type == raft.LogCommand {
			r, err := f.apply(txn, &m, l)
			if errors.Is(err, badger.ErrTxnTooBig) && len(logs) > 1 {
				txn.Discard()
				h := len(logs) / 2
				if err := f.applyRange(logs[:h], res[:h]); err != nil {
					return err
				}
				return f.applyRange(logs[h:], res[h:])
			}
			if err != nil {
				return fmt.Errorf("apply raft index %d: %w", l.Index, err)
			}
			res[i] = r
		}
		m.applied = l.Index
	}
	if err := writeMeta(txn, m); err != nil {
		return fmt.Errorf("apply raft index %d: %w", m.applied, err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("apply raft index %d: commit: %w", m.applied, err)
	}
	f.edge = f.work
	f.skipped.Add(skipped)
	f.mu.Lock()
	f.m = m
	f.notifyLocked()
	f.mu.Unlock()
	return nil
}

// errReplayed is the response to a command at or below the applied index:
// no caller waits for it.
var errReplayed = errors.New("command already applied")

func writeMeta(txn *badger.Txn, m meta) error {
	for _, kv := range []struct {
		k string
		v []byte
	}{
		{keyApplied, u64(m.applied)}, {keySize, u64(m.size)}, {keyTime, u64(uint64(m.time))},
		{keyPruned, u64(m.pruned)}, {keyPolicy, []byte(m.policy)},
	} {
		if err := txn.Set([]byte(kv.k), kv.v); err != nil {
			return err
		}
	}
	return nil
}

// apply runs the command of one Raft entry: an outcome, or for a batch a
// []outcome in the batch's order. A returned error is a storage error (the
// replica halts); a command the state refuses gets an outcome with a code.
func (f *fsm) apply(txn *badger.Txn, m *meta, l *raft.Log) (any, error) {
	c, err := decodeCommand(l.Data)
	if err != nil {
		// Every replica decodes the same bytes the same way: refusing is deterministic.
		return outcome{RaftIndex: l.Index, Code: "invalid"}, nil
	}
	if c.Op != opBatch {
		return f.applyCommand(txn, m, c, l.Index)
	}
	out := make([]outcome, len(c.Batch))
	for i, sub := range c.Batch {
		if sub == nil || sub.ID == "" || sub.Op == opBatch {
			out[i] = outcome{RaftIndex: l.Index, Code: "invalid"}
			continue
		}
		if out[i], err = f.applyCommand(txn, m, sub, l.Index); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyCommand runs one command (not a batch) of the entry at Raft index idx.
func (f *fsm) applyCommand(txn *badger.Txn, m *meta, c *command, idx uint64) (outcome, error) {
	var err error
	ck := []byte(pfxCommand + c.ID)
	if prev, ok, err := getBytes(txn, ck); err != nil {
		return outcome{}, err
	} else if ok {
		return decodeOutcome(prev)
	}
	if c.Time > m.time {
		m.time = c.Time
	}
	o := outcome{RaftIndex: idx, Time: m.time}
	switch c.Op {
	case opAppend:
		if c.Entry == nil || c.Entry.validate() != nil {
			o.Code = "invalid"
			break
		}
		o.Index, err = f.appendEntry(txn, m, *c.Entry)
		o.Appended = true
	case opAdmit:
		err = f.admit(txn, m, c, &o)
	case opPut, opDelete:
		if checkRecordKey(c.NS, c.Key) != nil {
			o.Code = "invalid"
			break
		}
		k := recordKey(c.NS, c.Key)
		if c.Op == opPut {
			err = txn.Set(k, c.Value)
		} else {
			err = txn.Delete(k)
		}
	case opPrune:
		err = f.prune(txn, m, c, &o)
	default:
		o.Code = "invalid"
	}
	if err != nil {
		return outcome{}, err
	}
	return o, txn.Set(ck, encodeOutcome(o))
}

// appendEntry gives e the next index and the command time, and adds it to
// the tree.
func (f *fsm) appendEntry(txn *badger.Txn, m *meta, e Entry) (uint64, error) {
	e.Version = EntryVersion
	e.Index = m.size
	e.Time = time.Unix(0, m.time).UTC()
	body := appendBody(append(make([]byte, 0, 32), e.Salt[:]...), &e.Body)
	e.BodyHash = bodyHash(body)
	leaf := EncodeLeaf(&e.Header)
	if err := storeEntry(txn, &f.work, e.Index, leaf, body); err != nil {
		return 0, err
	}
	if e.Type == TypePolicy && e.Outcome != OutcomeDenied {
		m.policy = e.PolicyVersion
	}
	m.size++
	return e.Index, nil
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

// prune deletes up to c.Max bodies of entries older than c.Before, and the
// request IDs and command outcomes older than it; when nothing is left it
// appends the prune entry.
func (f *fsm) prune(txn *badger.Txn, m *meta, c *command, o *outcome) error {
	if c.Entry == nil || c.Entry.validate() != nil || c.Max <= 0 {
		o.Code = "invalid"
		return nil
	}
	n := 0
	for m.pruned < m.size && n < c.Max {
		r, err := readRecord(txn, m.pruned)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("entry %d missing: %w", m.pruned, ErrCorrupt)
		}
		if err != nil {
			return err
		}
		h, err := DecodeLeaf(r.leaf)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", m.pruned, ErrCorrupt)
		}
		if h.Time.UnixNano() >= c.Before {
			break
		}
		if len(r.body) > 0 {
			if err := txn.Set(idxKey(pfxEntry, m.pruned), r.withoutBody()); err != nil {
				return err
			}
		}
		m.pruned++
		n++
	}
	for _, pfx := range []string{pfxRequest, pfxCommand} {
		if n >= c.Max {
			break
		}
		old, err := olderThan(txn, pfx, c.Before, c.Max-n)
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		n += len(old)
	}
	o.Pruned = c.Done + uint64(n)
	if n >= c.Max {
		o.More = true
		return nil
	}
	e := *c.Entry
	e.Type = TypePrune
	e.Outcome = OutcomeOK
	e.Count = o.Pruned
	var err error
	o.Index, err = f.appendEntry(txn, m, e)
	o.Appended = true
	return err
}

// olderThan lists up to max keys under pfx whose value holds a time before t:
// request IDs hold the time, command outcomes theirs (decodeOutcome).
func olderThan(txn *badger.Txn, pfx string, t int64, max int) ([][]byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfx), PrefetchValues: false})
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid() && len(out) < max; it.Next() {
		var at int64
		err := it.Item().Value(func(v []byte) error {
			if pfx == pfxRequest {
				if len(v) != 8 {
					return ErrCorrupt
				}
				at = int64(binary.BigEndian.Uint64(v))
				return nil
			}
			o, err := decodeOutcome(v)
			if err != nil {
				return err
			}
			at = o.Time
			return nil
		})
		if err != nil {
			return nil, err
		}
		if at < t {
			out = append(out, it.Item().KeyCopy(nil))
		}
	}
	return out, nil
}

func recordKey(ns, key string) []byte {
	return []byte(pfxRecord + ns + "\x00" + key)
}

func checkRecordKey(ns, key string) error {
	if ns == "" || strings.IndexByte(ns, 0) >= 0 || len(ns) > MaxField || len(key) > MaxField {
		return fmt.Errorf("record namespace %q: empty, too long or holds a NUL byte: %w", ns, ErrInvalid)
	}
	return nil
}

// Snapshot implements raft.FSM. It runs on raft's FSM goroutine, so the
// read transaction sees exactly the state at the last applied index.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.halted(); err != nil {
		return nil, err
	}
	// Raft may compact its log once the snapshot is taken: the state it
	// covers must be on disk first (state commits are not synced).
	if err := f.db.Sync(); err != nil {
		return nil, fmt.Errorf("snapshot ledger state: %w", err)
	}
	return &snapshot{txn: f.db.NewTransaction(false)}, nil
}

// snapshotMagic starts every snapshot stream.
const snapshotMagic = "xborder-ledger-snapshot/1\n"

type snapshot struct{ txn *badger.Txn }

// Persist writes every replicated key and value: magic, then per pair a
// 4-byte key length, key, 4-byte value length, value; then a 4-byte
// 0xffffffff end mark.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	err := func() error {
		if _, err := w.WriteString(snapshotMagic); err != nil {
			return err
		}
		it := s.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixState), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		var hdr [4]byte
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			binary.BigEndian.PutUint32(hdr[:], uint32(len(item.Key())))
			w.Write(hdr[:])
			w.Write(item.Key())
			if err := item.Value(func(v []byte) error {
				binary.BigEndian.PutUint32(hdr[:], uint32(len(v)))
				w.Write(hdr[:])
				_, err := w.Write(v)
				return err
			}); err != nil {
				return err
			}
		}
		binary.BigEndian.PutUint32(hdr[:], 0xffffffff)
		w.Write(hdr[:])
		return w.Flush()
	}()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist ledger snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() { s.txn.Discard() }

// maxSnapshotValue bounds one key or value read from a snapshot stream.
const maxSnapshotValue = 64 << 20

// readSnapshot decodes a snapshot stream, calling fn for every pair. It
// fails on a bad magic, a key outside the replicated prefix, an oversized
// length, or a missing end mark.
func readSnapshot(r io.Reader, fn func(k, v []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return fmt.Errorf("read ledger snapshot: bad header")
	}
	var hdr [4]byte
	next := func() ([]byte, bool, error) {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, false, fmt.Errorf("read ledger snapshot: %w", errShort)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0xffffffff {
			return nil, true, nil
		}
		if n > maxSnapshotValue {
			return nil, false, fmt.Errorf("read ledger snapshot: length %d too large", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, false, fmt.Errorf("read ledger snapshot: %w", errShort)
		}
		return b, false, nil
	}
	for {
		k, end, err := next()
		if err != nil {
			return err
		}
		if end {
			if _, err := br.ReadByte(); err != io.EOF {
				return fmt.Errorf("read ledger snapshot: %w", errTrailing)
			}
			return nil
		}
		if !bytes.HasPrefix(k, []byte(prefixState)) {
			return fmt.Errorf("read ledger snapshot: key outside the replicated state")
		}
		v, end, err := next()
		if err != nil {
			return err
		}
		if end {
			return fmt.Errorf("read ledger snapshot: end mark in place of a value")
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
}

// Restore implements raft.FSM: it replaces the replicated state with the
// snapshot's. A failure halts the replica (its state is then partial).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.DropPrefix([]byte(prefixState)); err != nil {
		f.stop(err)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	wb := f.db.NewWriteBatch()
	defer wb.Cancel()
	if err := readSnapshot(rc, func(k, v []byte) error { return wb.Set(k, v) }); err != nil {
		f.stop(err)
		return err
	}
	if err := wb.Flush(); err != nil {
		f.stop(err)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	if err := migrateRecords(f.db, f.log); err != nil {
		f.stop(err)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	if err := f.load(); err != nil {
		f.stop(err)
		return err
	}
	// The snapshot came from another replica: check that its leaves,
	// bodies and tree agree before serving from them, and record the tree
	// head for the start check.
	if err := f.checkAll(); err != nil {
		f.stop(err)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	if err := f.db.Sync(); err != nil {
		f.stop(err)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	return nil
}

// checkAll checks every leaf against its hash and body and rebuilds every
// tree hash from the leaves, then records the tree head as verified.
func (f *fsm) checkAll() error {
	size := f.meta().size
	err := f.db.View(func(txn *badger.Txn) error {
		return checkRecords(context.Background(), txn, size, 0)
	})
	if err != nil {
		return err
	}
	return f.db.Update(func(txn *badger.Txn) error {
		n, root, err := treeHead(txn)
		if err != nil {
			return err
		}
		return txn.Set([]byte(keyVerified), append(u64(n), root[:]...))
	})
}

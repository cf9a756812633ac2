package ledger

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/format"
)

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

	mu     sync.RWMutex // guards m
	m      meta
	halt   atomic.Pointer[error]
	haltCh chan struct{} // closed when halt is set

	// edge is the tree's edge as committed; work, the edge of the
	// transaction being applied. Both belong to Raft's apply goroutine
	// (Apply, ApplyBatch, Restore) and to newFSM before it.
	edge, work edge

	skipped atomic.Uint64 // commands at or below the applied index (replays)
	applied chan struct{} // closed and replaced whenever m.applied moves

	// failCommit, when set (tests only), fails every commit of the state
	// with its error, as a full or failing disk would.
	failCommit atomic.Pointer[error]

	// gate keeps writes to both badger databases (the state and the Raft
	// log) apart from value-log garbage collection: every writer that runs
	// while Raft does holds it shared, Compact exclusively around each
	// RunValueLogGC. Badger 4.9.6's value-log rewrite reads the memory
	// table's highest version (DB.MaxVersion) unsynchronised with the
	// writes that set it, a data race the race detector reports.
	gate sync.RWMutex
}

// update runs fn in a read-write transaction of the state database,
// holding the write gate shared.
func (f *fsm) update(fn func(txn *badger.Txn) error) error {
	f.gate.RLock()
	defer f.gate.RUnlock()
	return f.db.Update(fn)
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(db *badger.DB, log *slog.Logger) (*fsm, error) {
	f := &fsm{db: db, log: log, applied: make(chan struct{}), haltCh: make(chan struct{})}
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

// haltErr returns the error that halted the state machine, or nil.
func (f *fsm) halted() error {
	if p := f.halt.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *fsm) stop(err error) {
	err = fmt.Errorf("%w: %w", ErrHalted, err)
	if f.halt.CompareAndSwap(nil, &err) {
		close(f.haltCh)
		f.log.Error("ledger state machine halted: this replica applies nothing more until restarted", "err", err)
	}
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: the whole batch and the last
// applied index go into one badger transaction. A batch too big for one
// transaction is split in halves, and a single entry too big for one is
// applied command by command (applyAlone).
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
	tooBig := func() error {
		txn.Discard()
		if len(logs) == 1 {
			return f.applyAlone(logs[0], res)
		}
		h := len(logs) / 2
		if err := f.applyRange(logs[:h], res[:h]); err != nil {
			return err
		}
		return f.applyRange(logs[h:], res[h:])
	}
	skipped := uint64(0)
	for i, l := range logs {
		if l.Index <= m.applied {
			skipped++
			res[i] = errReplayed
			continue
		}
		if l.Type == raft.LogCommand {
			r, err := f.apply(txn, &m, l)
			if errors.Is(err, badger.ErrTxnTooBig) {
				return tooBig()
			}
			if err != nil {
				return fmt.Errorf("apply raft index %d: %w", l.Index, err)
			}
			res[i] = r
		}
		m.applied = l.Index
	}
	if err := writeMeta(txn, m); errors.Is(err, badger.ErrTxnTooBig) {
		return tooBig()
	} else if err != nil {
		return fmt.Errorf("apply raft index %d: %w", m.applied, err)
	}
	if err := f.commit(txn, m); err != nil {
		return err
	}
	f.skipped.Add(skipped)
	return nil
}

// commit commits txn, which holds the state m, and makes m and the edge
// being built the state machine's.
func (f *fsm) commit(txn *badger.Txn, m meta) error {
	if p := f.failCommit.Load(); p != nil {
		return fmt.Errorf("apply raft index %d: commit: %w", m.applied, *p)
	}
	f.gate.RLock()
	err := txn.Commit()
	f.gate.RUnlock()
	if err != nil {
		return fmt.Errorf("apply raft index %d: commit: %w", m.applied, err)
	}
	f.edge = f.work
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
	if len(l.Data) > maxEntrySize || len(c.Batch) > maxBatch {
		// Refused whole, with nothing written: not even an outcome under
		// each command ID, which could take more than a transaction.
		o := outcome{RaftIndex: l.Index, Code: codeTooLarge}
		if c.Op != opBatch {
			return o, nil
		}
		out := make([]outcome, len(c.Batch))
		for i := range out {
			out[i] = o
		}
		return out, nil
	}
	if c.Op != opBatch {
		return f.applyCommand(txn, m, c, l.Index)
	}
	out := make([]outcome, len(c.Batch))
	for i, sub := range c.Batch {
		if out[i], err = f.applyMember(txn, m, sub, l.Index); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyMember runs one member of a batch (decodeCommand leaves nil those
// that do not decode).
func (f *fsm) applyMember(txn *badger.Txn, m *meta, sub *command, idx uint64) (outcome, error) {
	if sub == nil || sub.ID == "" || sub.Op == opBatch {
		return outcome{RaftIndex: idx, Code: "invalid"}, nil
	}
	return f.applyCommand(txn, m, sub, idx)
}

// applyAlone applies the entry l, too big for one transaction, in several:
// one command (batch member) per transaction, and the applied index in the
// last, alone. The result is the state one transaction would have made: a
// crash between them replays the entry, and the commands already applied
// then answer from their stored outcomes, as any repeated command does. A
// command too big for a transaction on its own (the limits leave none, on
// replicas that share the badger options of stateOptions) is refused with
// "too_large", its outcome kept.
func (f *fsm) applyAlone(l *raft.Log, res []any) error {
	c, err := decodeCommand(l.Data)
	if err != nil {
		return fmt.Errorf("apply raft index %d: decode again: %w", l.Index, err)
	}
	cmds := []*command{c}
	if c.Op == opBatch {
		cmds = c.Batch
	}
	out := make([]outcome, len(cmds))
	for i, sub := range cmds {
		err := f.applyOwn(func(txn *badger.Txn, m *meta) (err error) {
			out[i], err = f.applyMember(txn, m, sub, l.Index)
			return err
		})
		if errors.Is(err, badger.ErrTxnTooBig) {
			err = f.applyOwn(func(txn *badger.Txn, m *meta) error {
				if m.time < sub.Time {
					m.time = sub.Time
				}
				out[i] = outcome{RaftIndex: l.Index, Time: m.time, Code: codeTooLarge}
				return txn.Set([]byte(pfxCommand+sub.ID), encodeOutcome(out[i]))
			})
		}
		if err != nil {
			return fmt.Errorf("apply raft index %d: %w", l.Index, err)
		}
	}
	if err := f.applyOwn(func(_ *badger.Txn, m *meta) error { m.applied = l.Index; return nil }); err != nil {
		return fmt.Errorf("apply raft index %d: %w", l.Index, err)
	}
	if c.Op == opBatch {
		res[0] = out
	} else {
		res[0] = out[0]
	}
	return nil
}

// applyOwn runs fn in a transaction of its own and commits it with the
// state fn leaves.
func (f *fsm) applyOwn(fn func(txn *badger.Txn, m *meta) error) error {
	m := f.meta()
	f.work = f.edge
	txn := f.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn, &m); err != nil {
		return err
	}
	if err := writeMeta(txn, m); err != nil {
		return err
	}
	return f.commit(txn, m)
}

// applyCommand runs one command (not a batch) of the entry at Raft index idx.
func (f *fsm) applyCommand(txn *badger.Txn, m *meta, c *command, idx uint64) (outcome, error) {
	if err := checkCommandID(c.ID); err != nil {
		// No key may hold such an ID: refused, and nothing kept.
		return outcome{RaftIndex: idx, Code: code(err)}, nil
	}
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
	if err := c.check(); err != nil {
		o.Code = code(err)
		return o, txn.Set(ck, encodeOutcome(o))
	}
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
		k := recordKey(c.NS, c.Key)
		if c.Op == opPut {
			err = txn.Set(k, c.Value)
		} else {
			err = txn.Delete(k)
		}
	case opSwap:
		err = f.swapRecord(txn, m, c, &o)
	case opPrune:
		err = f.prune(txn, m, c, &o)
	case opRule:
		err = f.applyRule(txn, m, c, &o)
	default:
		o.Code = "invalid"
	}
	if err != nil {
		return outcome{}, err
	}
	// The cursor of a prune is not kept (outcome.Cursor).
	stored := o
	stored.Cursor = nil
	return o, txn.Set(ck, encodeOutcome(stored))
}

// appendEntry gives e the next index and the command time, and adds it to
// the tree.
func (f *fsm) appendEntry(txn *badger.Txn, m *meta, e Entry) (uint64, error) {
	e.Version = EntryVersion
	e.Index = m.size
	e.Time = time.Unix(0, m.time).UTC()
	body := format.AppendBody(append(make([]byte, 0, 32), e.Salt[:]...), &e.Body)
	e.BodyHash = format.SaltedBodyHash(body)
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

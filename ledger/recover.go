package ledger

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/raftbadger"
)

// Crash safety of snapshots (docs/ledger.md, "Crash points").
//
// Raft runs with NoSnapshotRestoreOnStart: on start it takes the state as
// current up to its latest snapshot and replays only the log after it. Two
// crashes break that: one between Raft saving a received snapshot and the
// state machine restoring it (the state is then behind the snapshot), and
// one in the middle of a restore (the state is then partial). So a restore
// first records keyRestore, durably, and removes it only once the state
// it wrote is synced; and a state current through a snapshot records so
// under keySnapshot. Before Raft starts, recoverState restores the state
// from the latest snapshot when either crash happened, or refuses to start.

// snapStore is Raft's snapshot store as the ledger hands it to Raft: it
// names the failpoints of the snapshots written to it, and tells the state
// machine which snapshot Raft opened for a restore.
type snapStore struct {
	raft.SnapshotStore
	key    []byte        // Config.EncryptionKey: nil, snapshots are stored as written (snapcrypt.go)
	opened atomic.Uint64 // Raft index of the snapshot last opened
}

// Create implements raft.SnapshotStore. A sink serves a local snapshot
// (Persist marks it so) or one received from the leader (install).
func (s *snapStore) Create(version raft.SnapshotVersion, index, term uint64, c raft.Configuration,
	cIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, c, cIndex, trans)
	if err != nil {
		return nil, err
	}
	out := &snapSink{SnapshotSink: sink, index: index}
	if s.key != nil {
		if out.enc, err = newSnapWriter(sink, s.key, sink.ID()); err != nil {
			sink.Cancel()
			return nil, fmt.Errorf("create ledger snapshot: %w", err)
		}
	}
	return out, nil
}

// Open implements raft.SnapshotStore: the reader gives the plaintext state.
func (s *snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := openSnapshot(s.SnapshotStore, s.key, id)
	if err == nil {
		s.opened.Store(meta.Index)
	}
	return meta, rc, err
}

// snapSink is a snapshot being written: by Persist, or by Raft from the
// stream a leader sends (install).
type snapSink struct {
	raft.SnapshotSink
	index   uint64 // Raft index the snapshot covers
	persist bool   // written by Persist
	written bool
	enc     *snapWriter // nil: written as given
}

func (s *snapSink) step() string {
	if s.persist {
		return "persist"
	}
	return "install"
}

func (s *snapSink) Write(p []byte) (int, error) {
	var n int
	var err error
	if s.enc != nil {
		n, err = s.enc.Write(p)
	} else {
		n, err = s.SnapshotSink.Write(p)
	}
	if !s.written {
		s.written = true
		failpoint(s.step() + "-partial")
	}
	return n, err
}

func (s *snapSink) Close() error {
	failpoint(s.step() + "-before-close")
	if s.enc != nil {
		if err := s.enc.close(); err != nil {
			s.SnapshotSink.Cancel()
			return fmt.Errorf("write ledger snapshot: %w", err)
		}
	}
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	failpoint(s.step() + "-after-close")
	return nil
}

// logStore is the Raft log store with failpoints around the compaction
// that follows a snapshot.
type logStore struct {
	*raftbadger.Store
	// gate, when set, is the state machine's write gate (fsm.gate): every
	// write of the Raft log holds it shared.
	gate *sync.RWMutex
}

func (s logStore) lock() func() {
	if s.gate == nil {
		return func() {}
	}
	s.gate.RLock()
	return s.gate.RUnlock
}

func (s logStore) DeleteRange(min, max uint64) error {
	defer s.lock()()
	failpoint("compact-before")
	if err := s.Store.DeleteRange(min, max); err != nil {
		return err
	}
	failpoint("compact-after")
	return nil
}

func (s logStore) StoreLog(l *raft.Log) error {
	defer s.lock()()
	return s.Store.StoreLog(l)
}

func (s logStore) StoreLogs(ls []*raft.Log) error {
	defer s.lock()()
	return s.Store.StoreLogs(ls)
}

func (s logStore) Set(k, v []byte) error {
	defer s.lock()()
	return s.Store.Set(k, v)
}

func (s logStore) SetUint64(k []byte, v uint64) error {
	defer s.lock()()
	return s.Store.SetUint64(k, v)
}

// raftFSM is the state machine as Raft sees it: a restore learns the Raft
// index of the snapshot from the store that opened it.
type raftFSM struct {
	*fsm
	snaps *snapStore
}

func (r raftFSM) Restore(rc io.ReadCloser) error { return r.fsm.restore(rc, r.snaps.opened.Load()) }

// restore replaces the replicated state with the snapshot's (index: its
// Raft index, 0 when unknown). A failure halts the replica: its state is
// then partial, and keyRestore makes the next Open restore it again.
func (f *fsm) restore(rc io.ReadCloser, index uint64) error {
	defer rc.Close()
	if err := f.restoreState(rc, index); err != nil {
		f.stop(err)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	return nil
}

func (f *fsm) restoreState(r io.Reader, index uint64) error {
	// Every write of the restore (its own and checkAll's) is under the
	// gate, held once: a shared lock taken again could wait behind
	// Compact's exclusive one.
	f.gate.RLock()
	defer f.gate.RUnlock()
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyRestore), u64(index)) }); err != nil {
		return err
	}
	if err := f.db.Sync(); err != nil {
		return err
	}
	failpoint("restore-marked")
	if err := f.db.DropPrefix([]byte(prefixState)); err != nil {
		return err
	}
	failpoint("restore-dropped")
	wb := f.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	if err := readSnapshot(r, func(k, v []byte) error {
		if n++; n == 2 {
			failpoint("restore-partial")
		}
		return wb.Set(k, v)
	}); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	failpoint("restore-flushed")
	if err := migrateRecords(f.db, f.log); err != nil {
		return err
	}
	if err := f.load(); err != nil {
		return err
	}
	// The snapshot came from another replica: check that its leaves,
	// bodies and tree agree before serving from them, and record the tree
	// head for the start check.
	if err := f.checkAll(); err != nil {
		return err
	}
	failpoint("restore-checked")
	if err := f.db.Sync(); err != nil {
		return err
	}
	failpoint("restore-synced")
	applied := f.meta().applied
	if err := f.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keySnapshot), append(u64(applied), u64(index)...)); err != nil {
			return err
		}
		return txn.Delete([]byte(keyRestore))
	}); err != nil {
		return err
	}
	if err := f.db.Sync(); err != nil {
		return err
	}
	failpoint("restore-done")
	return nil
}

// markSnapshot records, durably, that the state at Raft index applied is
// current through the snapshot at Raft index index (what lies between are
// entries the state machine never sees: no-ops, barriers).
func markSnapshot(db *badger.DB, applied, index uint64) error {
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keySnapshot), append(u64(applied), u64(index)...))
	}); err != nil {
		return err
	}
	return db.Sync()
}

// recoverState runs before Raft starts. When a restore was interrupted, or
// the state is behind the latest snapshot (Raft would skip the entries in
// between), it restores the state from that snapshot; when it cannot, it
// refuses with ErrCorrupt and says what to do.
func (l *Ledger) recoverState(snaps *snapStore, logs raft.LogStore) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("open ledger snapshots: %w", err)
	}
	var latest *raft.SnapshotMeta
	if len(list) > 0 {
		latest = list[0]
	}
	reason, err := needsRestore(l.db, l.fsm.meta().applied, latest, logs)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	if reason == "" {
		return nil
	}
	refuse := func(why error) error {
		return fmt.Errorf("open ledger %s: %s, and it cannot be restored: %v: %w; remove the directory and add the replica again (AddVoter) so that it re-joins from a healthy replica, or restore the directory from a backup",
			l.cfg.Dir, reason, why, ErrCorrupt)
	}
	if latest == nil {
		return refuse(fmt.Errorf("no snapshot"))
	}
	l.log.Warn("restoring the ledger state from the latest snapshot", "reason", reason, "snapshot", latest.ID)
	meta, rc, err := snaps.Open(latest.ID)
	if err != nil {
		return refuse(err)
	}
	if err := l.fsm.restore(rc, meta.Index); err != nil {
		return refuse(err)
	}
	return nil
}

// needsRestore says why the state in db, at Raft index applied, must be
// restored from the latest snapshot (nil: none) before Raft starts, or ""
// when it need not: a restore was cut short, or Raft would skip entries
// the state lacks.
func needsRestore(db *badger.DB, applied uint64, latest *raft.SnapshotMeta, logs raft.LogStore) (string, error) {
	var restoring bool
	var covered, through uint64
	err := db.View(func(txn *badger.Txn) error {
		_, ok, err := getBytes(txn, []byte(keyRestore))
		restoring = ok
		if err != nil {
			return err
		}
		v, ok, err := getBytes(txn, []byte(keySnapshot))
		if ok && len(v) == 16 {
			covered, through = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		}
		return err
	})
	switch {
	case err != nil:
		return "", err
	case restoring:
		return "a snapshot restore was cut short", nil
	case latest == nil || applied >= latest.Index:
		return "", nil
	case through == latest.Index && applied >= covered:
		return "", nil
	case stateNeutral(logs, applied, latest.Index):
		return "", nil
	}
	return fmt.Sprintf("the state (Raft index %d) is behind the latest snapshot (Raft index %d)", applied, latest.Index), nil
}

// latestSnapshot reads the metadata of the latest complete snapshot that
// a raft.FileSnapshotStore keeps in dir (its base directory's "snapshots")
// without opening the store, which writes; nil when there is none.
func latestSnapshot(dir string) (*raft.SnapshotMeta, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var latest *raft.SnapshotMeta
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue // as raft does: a snapshot without its metadata is skipped
		}
		var m raft.SnapshotMeta
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		if latest == nil || m.Term > latest.Term || m.Term == latest.Term && m.Index > latest.Index {
			latest = &m
		}
	}
	return latest, nil
}

func raftStore(db *badger.DB) *raftbadger.Store { return raftbadger.New(db, prefixRaft) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// storedVerifierKey is the note verifier key of the agency key a directory
// holds, or "" without one.
func storedVerifierKey(txn *badger.Txn) (string, error) {
	agency, _, err := getBytes(txn, []byte(keyAgency))
	if err != nil {
		return "", err
	}
	pub, ok, err := getBytes(txn, []byte(keyPublic))
	if err != nil || !ok || len(pub) != ed25519.PublicKeySize {
		return "", err
	}
	return VerifierKey(Origin(string(agency)), pub)
}

// stateNeutral reports whether the Raft log holds every entry after from
// up to to, and none of them changes the state.
func stateNeutral(logs raft.LogStore, from, to uint64) bool {
	if to-from > 10_000 {
		return false
	}
	var e raft.Log
	for i := from + 1; i <= to; i++ {
		if logs.GetLog(i, &e) != nil || e.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

// failpointEnv names the one failpoint armed in a binary built with the
// failpoints tag (failpoint_on.go).
const failpointEnv = "XBORDER_LEDGER_FAILPOINT"

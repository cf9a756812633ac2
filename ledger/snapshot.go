package ledger

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

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
	return &snapshot{db: f.db, gate: &f.gate, txn: f.db.NewTransaction(false)}, nil
}

// snapshotMagic starts every snapshot stream.
const snapshotMagic = "xborder-ledger-snapshot/1\n"

type snapshot struct {
	db   *badger.DB
	gate *sync.RWMutex // the state machine's write gate (fsm.gate)
	txn  *badger.Txn
}

// Persist writes every replicated key and value: magic, then per pair a
// 4-byte key length, key, 4-byte value length, value; then a 4-byte
// 0xffffffff end mark. Before the snapshot is saved it records that the
// state is current through it (markSnapshot, recover.go).
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	ss, marked := sink.(*snapSink)
	if marked {
		ss.persist = true
	}
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
		if err := w.Flush(); err != nil {
			return err
		}
		if !marked {
			return nil
		}
		applied, err := getUint64(s.txn, keyApplied)
		if err != nil {
			return err
		}
		s.gate.RLock()
		defer s.gate.RUnlock()
		return markSnapshot(s.db, applied, ss.index)
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
// snapshot's (restore, recover.go). A failure halts the replica.
func (f *fsm) Restore(rc io.ReadCloser) error { return f.restore(rc, 0) }

// Snapshot takes a Raft snapshot of this replica now, keeping Raft's
// usual trailing log (Compact keeps none). With nothing new since the
// latest snapshot it does nothing. Operators need it rarely (Raft takes
// snapshots on its own); tests use it to have snapshots to erase.
func (l *Ledger) Snapshot() error {
	err := l.raft.Snapshot().Error()
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("snapshot ledger: %w", err)
	}
	return nil
}

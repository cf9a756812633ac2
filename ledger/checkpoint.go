package ledger

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// VerifierKey returns this ledger's note verifier key, or "" when the
// agency key was never given to this directory.
func (l *Ledger) VerifierKey() string { return l.verKey }

// treeHead reads a consistent size and root.
func treeHead(txn *badger.Txn) (uint64, tlog.Hash, error) {
	n, err := getUint64(txn, keySize)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	root, err := tlog.TreeHash(int64(n), hashReader{txn})
	return n, root, err
}

// signCheckpoint signs the current tree head and stores it.
func (l *Ledger) signCheckpoint() (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: no agency key: %w", ErrInvalid)
	}
	l.sigMu.Lock()
	defer l.sigMu.Unlock()
	var n uint64
	var root tlog.Hash
	if err := l.db.View(func(txn *badger.Txn) (err error) {
		n, root, err = treeHead(txn)
		return err
	}); err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	// The state this checkpoint covers must be durable before the
	// checkpoint is (state commits are not synced one by one).
	if err := l.syncState(); err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	text := log.Checkpoint{Origin: l.origin, Size: n, Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, l.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	err = l.fsm.update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keyNote), signed); err != nil {
			return err
		}
		return txn.Set([]byte(keyVerified), append(u64(n), root[:]...))
	})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w", err)
	}
	return Checkpoint{Origin: l.origin, Size: n, Root: root, Note: signed}, nil
}

// markVerified records the tree head this replica built, for the start check.
func (l *Ledger) markVerified() error {
	if err := l.syncState(); err != nil {
		return err
	}
	return l.fsm.update(func(txn *badger.Txn) error {
		n, root, err := treeHead(txn)
		if err != nil {
			return err
		}
		return txn.Set([]byte(keyVerified), append(u64(n), root[:]...))
	})
}

// Checkpoint returns the latest signed checkpoint, signing one first when
// this replica holds the key and the tree grew since.
func (l *Ledger) Checkpoint() (Checkpoint, error) {
	if l.signer != nil && l.raft.State() == raft.Leader {
		var stored []byte
		if err := l.db.View(func(txn *badger.Txn) (err error) {
			stored, _, err = getBytes(txn, []byte(keyNote))
			return err
		}); err != nil {
			return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
		}
		if stored != nil {
			if cp, err := ParseCheckpoint(stored, l.verKey); err == nil && cp.Size == l.fsm.meta().size {
				return cp, nil
			}
		}
		return l.signCheckpoint()
	}
	var stored []byte
	if err := l.db.View(func(txn *badger.Txn) (err error) {
		stored, _, err = getBytes(txn, []byte(keyNote))
		return err
	}); err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	if stored == nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint: none signed yet: %w", ErrNotFound)
	}
	return ParseCheckpoint(stored, l.verKey)
}

// checkpointLoop signs a checkpoint every interval while the tree grows (on
// the leader) and records the tree head (everywhere); in between, while the
// state changes, it starts its writeback every writebackInterval and syncs
// it every stateSyncInterval (statesync.go). It ends when Close closes
// l.stop.
func (l *Ledger) checkpointLoop() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.CheckpointInterval)
	defer t.Stop()
	st := time.NewTicker(stateSyncInterval)
	defer st.Stop()
	wb := time.NewTicker(writebackInterval)
	defer wb.Stop()
	last := ^uint64(0)
	synced := l.fsm.meta().applied
	written := synced
	for {
		select {
		case <-l.stop:
			return
		case <-wb.C:
			written = l.ifApplied(written, l.writeback, "write back ledger state")
			continue
		case <-st.C:
			synced = l.ifApplied(synced, l.syncState, "sync ledger state")
			continue
		case <-t.C:
		}
		size := l.fsm.meta().size
		if size == last || l.fsm.halted() != nil {
			continue
		}
		var err error
		if l.signer != nil && l.raft.State() == raft.Leader {
			_, err = l.signCheckpoint()
		} else {
			err = l.markVerified()
		}
		if err != nil {
			l.log.Warn("checkpoint", "err", err)
			continue
		}
		last = size
	}
}

// ifApplied runs do if the state machine applied anything past mark and is
// healthy, and returns the applied index it covered (mark again if do
// failed, so that the next tick tries again).
func (l *Ledger) ifApplied(mark uint64, do func() error, what string) uint64 {
	a := l.fsm.meta().applied
	if a == mark || l.fsm.halted() != nil {
		return mark
	}
	if err := do(); err != nil {
		l.log.Warn(what, "err", err)
		return mark
	}
	return a
}

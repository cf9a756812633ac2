package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/ledger/format"
)

// checkAll checks every leaf against its hash and body and rebuilds every
// tree hash from the leaves, then records the tree head as verified.
func (f *fsm) checkAll() error {
	size := f.meta().size
	err := f.db.View(func(txn *badger.Txn) error {
		return checkRecords(context.Background(), txn, 0, size)
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

// corrupt builds the start check's error.
func corrupt(i uint64, reason string, args ...any) error {
	return fmt.Errorf("check ledger at index %d: %s: %w; restore this replica's directory from a backup or re-join it from a healthy replica",
		i, fmt.Sprintf(reason, args...), ErrCorrupt)
}

// check verifies the stored ledger before Raft starts, at a cost in the
// entries added since the last verified tree head: the stored tree
// reproduces the last signed checkpoint and the last tree head this
// replica verified or built (keyVerified); every entry since that head
// decodes, carries its index, hashes to its stored leaf hash and matches
// its body, and the tree hashes it added are rebuilt from the leaves and
// compared. Then it records the tree head as verified, durably. Entries
// before the verified head are covered by its root only: Check checks
// them all (xborder ledger check).
func (l *Ledger) check(ctx context.Context) error {
	size := l.fsm.meta().size
	err := l.db.View(func(txn *badger.Txn) error {
		from, err := checkHeads(txn, size, l.verKey)
		if err != nil {
			return err
		}
		return checkRecords(ctx, txn, from, size)
	})
	if err != nil {
		return err
	}
	if err := l.db.Update(func(txn *badger.Txn) error {
		n, root, err := treeHead(txn)
		if err != nil {
			return err
		}
		return txn.Set([]byte(keyVerified), append(u64(n), root[:]...))
	}); err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	if err := l.db.Sync(); err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	return nil
}

// checkHeads checks that the stored tree reproduces the recorded tree head
// and the signed checkpoint (verified with verKey, when not empty), and
// returns the size of the recorded head (0 without one).
func checkHeads(txn *badger.Txn, size uint64, verKey string) (uint64, error) {
	var from uint64
	ver, ok, err := getBytes(txn, []byte(keyVerified))
	if err != nil {
		return 0, fmt.Errorf("check ledger: %w", err)
	}
	heads := map[uint64]tlog.Hash{}
	if ok {
		if len(ver) != 8+tlog.HashSize {
			return 0, corrupt(0, "tree head record of %d bytes", len(ver))
		}
		from = binary.BigEndian.Uint64(ver)
		heads[from] = tlog.Hash(ver[8:])
	}
	if signed, ok, err := getBytes(txn, []byte(keyNote)); err != nil {
		return 0, fmt.Errorf("check ledger: %w", err)
	} else if ok && verKey != "" {
		cp, err := ParseCheckpoint(signed, verKey)
		if err != nil {
			return 0, corrupt(0, "stored checkpoint: %v", err)
		}
		if r, seen := heads[cp.Size]; seen && r != cp.Root {
			return 0, corrupt(cp.Size, "signed checkpoint and recorded tree head disagree")
		}
		heads[cp.Size] = cp.Root
	}
	for n, want := range heads {
		if n > size {
			return 0, corrupt(size, "%d entries, but a checkpoint covers %d", size, n)
		}
		got, err := tlog.TreeHash(int64(n), hashReader{txn})
		if err != nil {
			return 0, corrupt(n, "tree hash: %v", err)
		}
		if got != want {
			return 0, corrupt(n, "the stored tree at size %d does not reproduce its checkpoint root", n)
		}
	}
	return from, nil
}

// checkRecords checks the records of entries from to size-1 (checkStored)
// and that no other entry from from on is stored.
func checkRecords(ctx context.Context, txn *badger.Txn, from, size uint64) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxEntry), PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	i := from
	for it.Seek(idxKey(pfxEntry, from)); it.Valid(); it.Next() {
		if i%4096 == 0 && ctx.Err() != nil {
			return fmt.Errorf("check ledger: %w", ctx.Err())
		}
		if got := binary.BigEndian.Uint64(it.Item().Key()[len(pfxEntry):]); got != i {
			return corrupt(i, "entry missing (next stored entry is %d)", got)
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("check ledger: %w", err)
		}
		r, err := parseRecord(i, v)
		if err != nil {
			return err
		}
		if err := checkStored(txn, i, r); err != nil {
			return err
		}
		i++
	}
	if i != size {
		return corrupt(i, "%d entries stored, state says %d", i, size)
	}
	return nil
}

// checkStored checks the record r of entry i: its leaf against its leaf
// hash and its body, and every tree hash that adding the leaf produced,
// rebuilt from the stored tree.
func checkStored(txn *badger.Txn, i uint64, r record) error {
	h, err := DecodeLeaf(r.leaf)
	if err != nil {
		return corrupt(i, "%v", err)
	}
	if h.Index != i {
		return corrupt(i, "leaf carries index %d", h.Index)
	}
	if tlog.RecordHash(r.leaf) != r.hash(0) {
		return corrupt(i, "leaf does not match its hash in the tree")
	}
	if len(r.body) > 0 {
		b, err := format.DecodeBody(r.body[32:])
		if err != nil {
			return corrupt(i, "body: %v", err)
		}
		if BodyHash(Digest(r.body[:32]), b) != h.BodyHash {
			return corrupt(i, "body does not match the body hash in its leaf")
		}
	}
	want, err := tlog.StoredHashes(int64(i), r.leaf, hashReader{txn})
	if err != nil {
		return corrupt(i, "rebuild tree: %v", err)
	}
	for k, w := range want {
		if r.hash(k) != w {
			return corrupt(i, "tree hash %d does not match the leaves", tlog.StoredHashIndex(0, int64(i))+int64(k))
		}
	}
	return nil
}

// CheckReport is what Check found in a replica's directory.
type CheckReport struct {
	Size       uint64    // entries
	Root       tlog.Hash // root of the tree of Size entries
	Checkpoint uint64    // size of the last signed checkpoint stored; 0: none
	Verified   uint64    // size of the tree head the start check last recorded
	Applied    uint64    // last Raft index the state applied
	// Recover, when not empty, says why the next Open restores the state
	// from the latest snapshot before serving (docs/ledger.md, "Crash
	// points"); the entries checked are then those of the state before.
	Recover string
}

// Check checks a stopped replica's ledger directory in full, offline: every
// entry's leaf against its hash and body, every tree hash rebuilt from the
// leaves, the last signed checkpoint (against the agency key the directory
// holds) and the last recorded tree head against the tree; and it says
// whether the next Open must restore the state from a snapshot. It opens
// the databases read-only, and fails while a replica runs on dir. A
// disagreement is ErrCorrupt, naming the first bad index. encryptionKey is
// Config.EncryptionKey.
func Check(ctx context.Context, dir string, encryptionKey []byte) (CheckReport, error) {
	var rep CheckReport
	opts := dbOptions(dir, encryptionKey, badgerLogger{discardLogger()}).WithReadOnly(true)
	db, err := badger.Open(stateOptions(opts))
	if err != nil {
		return rep, fmt.Errorf("check ledger %s: %w (is a replica running on it? stop it first)", dir, err)
	}
	defer db.Close()
	raftDB, err := badger.Open(opts.WithDir(filepath.Join(dir, "raft")).WithValueDir(filepath.Join(dir, "raft")))
	if err != nil {
		return rep, fmt.Errorf("check ledger %s: %w (is a replica running on it? stop it first)", dir, err)
	}
	defer raftDB.Close()
	err = db.View(func(txn *badger.Txn) error {
		var err error
		if rep.Size, err = getUint64(txn, keySize); err != nil {
			return err
		}
		if rep.Applied, err = getUint64(txn, keyApplied); err != nil {
			return err
		}
		verKey, err := storedVerifierKey(txn)
		if err != nil {
			return err
		}
		if rep.Verified, err = checkHeads(txn, rep.Size, verKey); err != nil {
			return err
		}
		if signed, ok, err := getBytes(txn, []byte(keyNote)); err == nil && ok && verKey != "" {
			if cp, err := ParseCheckpoint(signed, verKey); err == nil {
				rep.Checkpoint = cp.Size
			}
		}
		if err := checkRecords(ctx, txn, 0, rep.Size); err != nil {
			return err
		}
		_, rep.Root, err = treeHead(txn)
		return err
	})
	if err != nil {
		return rep, err
	}
	latest, err := latestSnapshot(filepath.Join(dir, "snapshots", "snapshots"))
	if err != nil {
		return rep, fmt.Errorf("check ledger %s: %w", dir, err)
	}
	rep.Recover, err = needsRestore(db, rep.Applied, latest, logStore{Store: raftStore(raftDB)})
	if err != nil {
		return rep, fmt.Errorf("check ledger %s: %w", dir, err)
	}
	return rep, nil
}

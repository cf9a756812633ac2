package ledger

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/ledger/format"
)

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

// corrupt builds the start check's error.
func corrupt(i uint64, reason string, args ...any) error {
	return fmt.Errorf("check ledger at index %d: %s: %w; restore this replica's directory from a backup or re-join it from a healthy replica",
		i, fmt.Sprintf(reason, args...), ErrCorrupt)
}

// check verifies the stored ledger before Raft starts: every leaf decodes,
// carries its index, hashes to the stored leaf hash and matches its body;
// the stored tree reproduces the last signed checkpoint and the last tree
// head this replica recorded; and the tree hashes of entries added since
// that head are rebuilt from the leaves and compared.
func (l *Ledger) check(ctx context.Context) error {
	size := l.fsm.meta().size
	return l.db.View(func(txn *badger.Txn) error {
		var from uint64
		ver, ok, err := getBytes(txn, []byte(keyVerified))
		if err != nil {
			return fmt.Errorf("check ledger: %w", err)
		}
		heads := map[uint64]tlog.Hash{}
		if ok {
			if len(ver) != 8+tlog.HashSize {
				return corrupt(0, "tree head record of %d bytes", len(ver))
			}
			from = binary.BigEndian.Uint64(ver)
			heads[from] = tlog.Hash(ver[8:])
		}
		if signed, ok, err := getBytes(txn, []byte(keyNote)); err != nil {
			return fmt.Errorf("check ledger: %w", err)
		} else if ok && l.verKey != "" {
			cp, err := ParseCheckpoint(signed, l.verKey)
			if err != nil {
				return corrupt(0, "stored checkpoint: %v", err)
			}
			if r, seen := heads[cp.Size]; seen && r != cp.Root {
				return corrupt(cp.Size, "signed checkpoint and recorded tree head disagree")
			}
			heads[cp.Size] = cp.Root
		}
		for n, want := range heads {
			if n > size {
				return corrupt(size, "%d entries, but a checkpoint covers %d", size, n)
			}
			got, err := tlog.TreeHash(int64(n), hashReader{txn})
			if err != nil {
				return corrupt(n, "tree hash: %v", err)
			}
			if got != want {
				return corrupt(n, "the stored tree at size %d does not reproduce its checkpoint root", n)
			}
		}
		return checkRecords(ctx, txn, size, from)
	})
}

// checkRecords checks the records of entries 0 to size-1 (checkStored),
// rebuilding the tree hashes of those from index from on.
func checkRecords(ctx context.Context, txn *badger.Txn, size, from uint64) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxEntry), PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	i := uint64(0)
	for it.Rewind(); it.Valid(); it.Next() {
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
		if err := checkStored(txn, i, r, i >= from); err != nil {
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
// hash and its body, and when rebuild is set, every tree hash that adding
// the leaf produced, rebuilt from the stored tree.
func checkStored(txn *badger.Txn, i uint64, r record, rebuild bool) error {
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
	if rebuild {
		want, err := tlog.StoredHashes(int64(i), r.leaf, hashReader{txn})
		if err != nil {
			return corrupt(i, "rebuild tree: %v", err)
		}
		for k, w := range want {
			if r.hash(k) != w {
				return corrupt(i, "tree hash %d does not match the leaves", tlog.StoredHashIndex(0, int64(i))+int64(k))
			}
		}
	}
	return nil
}

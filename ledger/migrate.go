package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// migrateRecords rewrites a state kept in the layout before entry records
// (each entry's leaf, body and tree hashes under keys of their own: s/l/,
// s/b/, s/h/) as entry records, and deletes the old keys. It runs when
// the state database opens and after a snapshot is restored, since a
// replica of an earlier version may have written either. Each entry's
// record is written before its old keys are deleted, and an entry is
// rewritten from its own keys alone, so a migration cut short by a crash
// resumes on the next start. The checks that follow (the start check,
// checkAll) then verify the records as usual.
func migrateRecords(db *badger.DB, log *slog.Logger) error {
	var old bool
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxLeaf)})
		defer it.Close()
		it.Rewind()
		old = it.Valid()
		return nil
	})
	if err != nil || !old {
		return err
	}
	log.Info("ledger state in the layout before entry records: rewriting it")
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxLeaf), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(pfxLeaf)+8 {
				return fmt.Errorf("migrate ledger state: leaf key of %d bytes: %w", len(k), ErrCorrupt)
			}
			i := binary.BigEndian.Uint64(k[len(pfxLeaf):])
			leaf, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			base := tlog.StoredHashIndex(0, int64(i))
			hashes := make([]tlog.Hash, hashCount(i))
			del := [][]byte{idxKey(pfxLeaf, i), idxKey(pfxBody, i)}
			for h := range hashes {
				key := idxKey(pfxHash, uint64(base)+uint64(h))
				v, ok, err := getBytes(txn, key)
				if err != nil {
					return err
				}
				if !ok || len(v) != tlog.HashSize {
					return fmt.Errorf("migrate ledger state: entry %d: tree hash %d missing or of %d bytes: %w", i, base+int64(h), len(v), ErrCorrupt)
				}
				hashes[h] = tlog.Hash(v)
				del = append(del, key)
			}
			body, _, err := getBytes(txn, idxKey(pfxBody, i))
			if err != nil {
				return err
			}
			if err := wb.Set(idxKey(pfxEntry, i), encodeRecord(hashes, leaf, body)); err != nil {
				return err
			}
			for _, key := range del {
				if err := wb.Delete(key); err != nil {
					return err
				}
			}
			if n++; n%100_000 == 0 {
				log.Info("rewriting ledger state", "entries", n)
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("migrate ledger state: %w", err)
		}
		return err
	}
	log.Info("ledger state rewritten as entry records", "entries", n)
	return nil
}

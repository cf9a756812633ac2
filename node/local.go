package node

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/ledger"
)

// SetsDir is the replica's local store of built encoded sets and of the
// seeds of the live epochs (badger, encrypted with the storage key). It
// is not replicated: every replica builds the same bytes.
const SetsDir = "sets"

// openLocal opens the badger database in dir (made if missing),
// encrypted with the storage key, past an empty memtable file that a
// killed process left (ledger.OpenBadger).
func openLocal(dir string, key []byte) (*badger.DB, error) {
	name := filepath.Base(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	opts := badger.DefaultOptions(filepath.Clean(dir)).WithLogger(nil).WithEncryptionKey(key).
		WithIndexCacheSize(8 << 20).WithMemTableSize(16 << 20).WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(8 << 20).WithNumCompactors(2)
	db, err := ledger.OpenBadger(opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return db, nil
}

// localString reads a small value ("x/<key>") of a local store; a
// missing or unreadable one is "".
func localString(db *badger.DB, key string) string {
	var out string
	_ = db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("x/" + key))
		if err != nil {
			return err
		}
		b, err := it.ValueCopy(nil)
		out = string(b)
		return err
	})
	return out
}

// setLocalString writes a small value ("x/<key>") of a local store.
func setLocalString(db *badger.DB, key, v string) error {
	return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/"+key), []byte(v)) })
}

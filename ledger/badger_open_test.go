package ledger

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestOpenBadgerAfterAnEmptyMemtable: a replica killed between badger's
// creation of a memtable file and its first write leaves a 0-byte .mem
// file, and badger.Open then fails with "while opening fid: N err: Create a
// new file" (dgraph-io/badger#2207); the chaos run 31 lost DE's r3 so, its
// sets store unopenable for the rest of the run (docs/RELIABILITY.md,
// defect 14). OpenBadger opens it, with what was committed before.
func TestOpenBadgerAfterAnEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(16 << 20)
	db, err := OpenBadger(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// What SIGKILL leaves right after badger created its next memtable.
	empty := filepath.Join(dir, "00009.mem")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = OpenBadger(opts)
	if err != nil {
		t.Fatalf("open with an empty memtable file: %v", err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("k"))
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err == nil && string(v) != "v" {
			t.Errorf("k = %q; want v", v)
		}
		return err
	})
	if err != nil {
		t.Errorf("read what was committed: %v", err)
	}
}

package ledger

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// toOldLayout rewrites every entry record in db as the layout before
// entry records had it: the leaf, the body (when not pruned) and the tree
// hashes under keys of their own.
func toOldLayout(t *testing.T, db *badger.DB) {
	t.Helper()
	err := db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxEntry), PrefetchValues: true})
		defer it.Close()
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		for i, k := range keys {
			v, _, err := getBytes(txn, k)
			if err != nil {
				return err
			}
			r, err := parseRecord(uint64(i), v)
			if err != nil {
				return err
			}
			if err := txn.Set(idxKey(pfxLeaf, uint64(i)), r.leaf); err != nil {
				return err
			}
			if len(r.body) > 0 {
				if err := txn.Set(idxKey(pfxBody, uint64(i)), r.body); err != nil {
					return err
				}
			}
			base := uint64(tlog.StoredHashIndex(0, int64(i)))
			for k := range hashCount(uint64(i)) {
				h := r.hash(k)
				if err := txn.Set(idxKey(pfxHash, base+uint64(k)), h[:]); err != nil {
					return err
				}
			}
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// countPrefix counts the keys under prefix.
func countPrefix(t *testing.T, db *badger.DB, prefix string) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type bufSink struct{ bytes.Buffer }

func (*bufSink) ID() string    { return "test" }
func (*bufSink) Cancel() error { return nil }
func (*bufSink) Close() error  { return nil }

// TestMigrateRecords: a state in the layout before entry records (with
// pruned bodies, and tree hashes at several levels) opens as the same
// ledger, whether found on disk at start or restored from a snapshot, and
// no key of the old layout is left.
func TestMigrateRecords(t *testing.T) {
	l, cfg, clk, t0 := openRetained(t)
	appendN(t, l, 0, 6)
	clk.Set(t0.AddDate(0, 6, 0))
	appendN(t, l, 6, 14)
	clk.Set(t0.AddDate(1, 3, 0))
	if _, _, err := l.Prune(context.Background(), t0.AddDate(0, 1, 0), "dpo"); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	want, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	wantSize, wantRoot, err := l.TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	state := filepath.Join(cfg.Dir, "state")
	db, err := badger.Open(stateOptions(dbOptions(cfg.Dir, nil, nil)).WithDir(state).WithValueDir(state))
	if err != nil {
		t.Fatal(err)
	}
	toOldLayout(t, db)
	if n := countPrefix(t, db, pfxLeaf); n != len(want) {
		t.Fatalf("old layout has %d leaves; want %d", n, len(want))
	}

	// A snapshot taken from the old layout restores as records.
	old := &fsm{db: db, log: discard(), applied: make(chan struct{})}
	snap, err := old.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	db.Close()
	rdb, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	f, err := newFSM(rdb, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatalf("Restore of an old-layout snapshot: %v", err)
	}
	err = rdb.View(func(txn *badger.Txn) error {
		n, root, err := treeHead(txn)
		if n != wantSize || root != wantRoot {
			t.Errorf("restored tree = %d %x, %v; want %d %x", n, root, err, wantSize, wantRoot)
		}
		for i := range want {
			e, _, err := readEntry(txn, uint64(i))
			if err != nil || !reflect.DeepEqual(e, want[i]) {
				t.Errorf("restored entry %d = %+v, %v; want %+v", i, e, err, want[i])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pfxLeaf, pfxBody, pfxHash} {
		if n := countPrefix(t, rdb, p); n != 0 {
			t.Errorf("%d keys under %s after the restore", n, p)
		}
	}

	// The old layout on disk opens: the start check passes against the
	// signed checkpoint, and entries and proofs are the same.
	l = open(t, cfg)
	got, err := l.Entries(context.Background(), Filter{})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("entries after migration = %+v, %v; want %+v", got, err, want)
	}
	for i := range want {
		p, err := l.Entry(uint64(i), 0)
		if err != nil {
			t.Fatalf("Entry(%d): %v", i, err)
		}
		if p.Root != wantRoot || tlog.CheckRecord(p.Proof, int64(p.Size), p.Root, int64(i), tlog.RecordHash(p.Leaf)) != nil {
			t.Errorf("entry %d: proof against %x does not verify (want root %x)", i, p.Root, wantRoot)
		}
	}
	appendN(t, l, 20, 3)
	l.Close()
	l = open(t, cfg)
	defer l.Close()
	if st := l.Status(); st.Size != wantSize+3 {
		t.Errorf("size after appending to the migrated ledger and reopening = %d; want %d", st.Size, wantSize+3)
	}
	for _, p := range []string{pfxLeaf, pfxBody, pfxHash} {
		if n := countPrefix(t, l.db, p); n != 0 {
			t.Errorf("%d keys under %s after the migration", n, p)
		}
	}
}

package ledger

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// rawUpdate changes the closed ledger's badger database directly.
func rawUpdate(t *testing.T, dir string, fn func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "state")).WithLogger(nil).
		WithValueThreshold(64 << 10).WithMemTableSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// flipRecordByte flips one byte of entry i's record: the one at the
// offset that at gives for the record (parsed from v).
func flipRecordByte(txn *badger.Txn, i uint64, at func(v []byte, r record) int) error {
	key := idxKey(pfxEntry, i)
	v, _, err := getBytes(txn, key)
	if err != nil {
		return err
	}
	r, err := parseRecord(i, slices.Clone(v))
	if err != nil {
		return err
	}
	v[at(v, r)] ^= 1
	return txn.Set(key, v)
}

// Offsets in a record: the last byte of the leaf, of the body, and the
// first of the tree hash at a level.
func leafEnd(v []byte, r record) int { return len(v) - len(r.body) - 1 }
func bodyEnd(v []byte, r record) int { return len(v) - 1 }
func hashAt(level int) func([]byte, record) int {
	return func([]byte, record) int { return level * tlog.HashSize }
}

// TestStartCheckCatchesTampering changes one stored byte in several places
// of a closed ledger. Check (xborder ledger check) must find each with
// ErrCorrupt naming the index; Open must refuse in the same way when the
// byte is in what the start check covers (entries since the last verified
// tree head, and the tree on the path to its root), and start otherwise.
func TestStartCheckCatchesTampering(t *testing.T) {
	tests := []struct {
		name    string
		entry   uint64
		at      func(v []byte, r record) int
		wantAt  string
		atStart bool
	}{
		{"leaf before the checkpoint", 3, leafEnd, "index 3", false},
		{"leaf after the checkpoint", 11, leafEnd, "index 11", true},
		{"body before the checkpoint", 5, bodyEnd, "index 5", false},
		{"body after the checkpoint", 12, bodyEnd, "index 12", true},
		// Storage index StoredHashIndex(3, 0): level 3, in entry 7's record.
		{"tree hash on the checkpoint's path", 7, hashAt(3), "index 10", true},
		// StoredHashIndex(1, 6): level 1, in entry 13's record.
		{"tree hash after the checkpoint", 13, hashAt(1), "index 13", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			cfg.CheckpointInterval = time.Hour // only Close signs
			l := open(t, cfg)
			appendN(t, l, 0, 10)
			l.Close()
			l = open(t, cfg)
			appendN(t, l, 10, 4) // 10..13: after the last checkpoint (10)
			// Close without signing: stop Raft and the database directly,
			// so that entries 10..13 are newer than every checkpoint.
			close(l.stop)
			<-l.done
			l.raft.Shutdown().Error()
			l.trans.Close()
			l.raftDB.Close()
			l.db.Close()

			rawUpdate(t, dir, func(txn *badger.Txn) error { return flipRecordByte(txn, tc.entry, tc.at) })
			if _, err := Check(context.Background(), dir, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.wantAt) {
				t.Errorf("Check after tampering with the %s = %v; want ErrCorrupt at %s", tc.name, err, tc.wantAt)
			}
			l, err := Open(context.Background(), cfg)
			if !tc.atStart {
				if err != nil {
					t.Fatalf("Open after tampering with the %s, before the verified head = %v; want it to start", tc.name, err)
				}
				l.Close()
				return
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.wantAt) {
				t.Fatalf("Open after tampering with the %s = %v; want ErrCorrupt at %s", tc.name, err, tc.wantAt)
			}
		})
	}
}

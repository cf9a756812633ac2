package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
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
// of a closed ledger; Open must refuse with ErrCorrupt naming the index.
func TestStartCheckCatchesTampering(t *testing.T) {
	tests := []struct {
		name   string
		entry  uint64
		at     func(v []byte, r record) int
		wantAt string
	}{
		{"leaf before the checkpoint", 3, leafEnd, "index 3"},
		{"leaf after the checkpoint", 11, leafEnd, "index 11"},
		{"body", 5, bodyEnd, "index 5"},
		// Storage index StoredHashIndex(3, 0): level 3, in entry 7's record.
		{"tree hash on the checkpoint's path", 7, hashAt(3), "index 10"},
		// StoredHashIndex(1, 6): level 1, in entry 13's record.
		{"tree hash after the checkpoint", 13, hashAt(1), "index 13"},
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
			_, err := Open(context.Background(), cfg)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.wantAt) {
				t.Fatalf("Open after tampering with the %s = %v; want ErrCorrupt at %s", tc.name, err, tc.wantAt)
			}
		})
	}
}

func exportLedger(t *testing.T, l *Ledger) string {
	t.Helper()
	out := t.TempDir()
	if _, err := l.Export(context.Background(), out, "auditor-1"); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return out
}

func readExport(t *testing.T, dir string) []ExportLine {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, ExportEntries))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []ExportLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l ExportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func writeExport(t *testing.T, dir string, lines []ExportLine) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ExportEntries), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, n := range []string{ExportCheckpoint, ExportPublicKey, ExportEntries} {
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestVerifyCatchesTampering: an export verifies; each kind of change to
// it fails with the first bad index.
func TestVerifyCatchesTampering(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	appendN(t, l, 0, 5)
	early, err := l.signCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 5, 10)
	good := exportLedger(t, l)
	rep, err := Verify(good, l.VerifierKey(), early.Note)
	if err != nil {
		t.Fatalf("Verify of an untouched export: %v", err)
	}
	if rep.Size != 16 || rep.Bodies != 16 || rep.TrustedSize != 5 {
		t.Errorf("Verify report = %+v; want 16 entries (15 + the export), 16 bodies, trusted 5", rep)
	}

	tests := []struct {
		name   string
		change func([]ExportLine) []ExportLine
		index  int64
	}{
		{"leaf removed", func(ls []ExportLine) []ExportLine { return append(ls[:7:7], ls[8:]...) }, 7},
		{"leaf byte altered", func(ls []ExportLine) []ExportLine { ls[4].Leaf[20] ^= 1; return ls }, 4},
		{"header altered", func(ls []ExportLine) []ExportLine { ls[9].Header.Partner = "DE"; return ls }, 9},
		{"body altered", func(ls []ExportLine) []ExportLine { ls[2].Body.Actor = "someone else"; return ls }, 2},
		{"salt dropped", func(ls []ExportLine) []ExportLine { ls[6].Salt = nil; return ls }, 6},
		{"last entry removed", func(ls []ExportLine) []ExportLine { return ls[:len(ls)-1] }, 15},
		{"leaf and header altered together", func(ls []ExportLine) []ExportLine {
			ls[3].Header.Partner = "DE"
			ls[3].Leaf = EncodeLeaf(&ls[3].Header)
			return ls
		}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, good)
			writeExport(t, dir, tc.change(readExport(t, dir)))
			_, err := Verify(dir, l.VerifierKey(), nil)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrVerify) || ve.Index != tc.index {
				t.Fatalf("Verify = %v; want a VerifyError at index %d", err, tc.index)
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		other, err := VerifierKey(Origin("GB"), testKey2.Public().(ed25519PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(good, other, nil); !errors.Is(err, ErrVerify) {
			t.Errorf("Verify with another agency's key = %v; want ErrVerify", err)
		}
	})
	t.Run("trusted checkpoint from a forked history", func(t *testing.T) {
		fork := open(t, testConfig(t.TempDir()))
		defer fork.Close()
		appendN(t, fork, 100, 5)
		cp, err := fork.signCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(good, l.VerifierKey(), cp.Note); !errors.Is(err, ErrVerify) {
			t.Errorf("Verify against a checkpoint of another history = %v; want ErrVerify", err)
		}
	})
}

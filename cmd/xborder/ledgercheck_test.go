package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/ledger"
)

// TestLedgerCheck: check refuses a running replica's directory, passes a
// stopped one, and exits 5 naming the entry after a stored leaf changed.
func TestLedgerCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ledger")
	l, err := ledger.Open(context.Background(), ledger.Config{Dir: dir, ReplicaID: "r1", Agency: "GB", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 6 {
		if _, err := l.Append(context.Background(), ledger.Entry{
			Header: ledger.Header{Type: ledger.TypeMatchOut, RequestID: fmt.Sprintf("q%d", i), Partner: "FR", Kind: "phone", Outcome: ledger.OutcomeOK},
			Body:   ledger.Body{Actor: "officer", CaseRef: "case-1"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, stderr := runCLI("ledger", "check", dir); code != exitInvalid || !strings.Contains(stderr, "stop the replica first") {
		t.Errorf("check of a running replica = exit %d, %q; want %d and a hint to stop it", code, stderr, exitInvalid)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("ledger", "check", dir)
	if code != exitOK || !strings.Contains(stdout, ": 6 entries, root ") || !strings.HasSuffix(stdout, "ok\n") {
		t.Errorf("check = exit %d, %q, %q; want 0 and 6 entries", code, stdout, stderr)
	}
	// Flip the last byte of entry 1's record (the end of its body).
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "state")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	key := append([]byte("s/e/"), 0, 0, 0, 0, 0, 0, 0, 1)
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)-1] ^= 1
		return txn.Set(key, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI("ledger", "check", dir); code != exitVerify || !strings.Contains(stderr, "index 1") {
		t.Errorf("check after tampering = exit %d, %q; want %d naming index 1", code, stderr, exitVerify)
	}
	if code, _, _ := runCLI("ledger", "check"); code != exitUsage {
		t.Errorf("check without a directory = exit %d; want %d", code, exitUsage)
	}
}

package ledger

import (
	"bytes"
	"context"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/raftbadger"
)

// TestCompactTruncatesTheLog checks that after Compact the Raft log no
// longer holds the command that carried an overwritten record's old value,
// and that the records and later writes are unaffected.
func TestCompactTruncatesTheLog(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	t.Cleanup(func() { l.Close() })
	ctx := context.Background()
	secret := []byte("old-value-to-erase")
	r, err := l.Put(ctx, "rows", "k", secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, "rows", "k", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	// Every log entry left must not carry the old value.
	store := raftbadger.New(l.raftDB, prefixRaft)
	lo, err := store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	hi, _ := store.LastIndex()
	if lo != 0 && lo <= r.RaftIndex {
		t.Errorf("log starts at %d after Compact; want past %d, the old value's command", lo, r.RaftIndex)
	}
	for i := lo; i <= hi && lo > 0; i++ {
		var e raft.Log
		if err := store.GetLog(i, &e); err != nil {
			continue
		}
		if bytes.Contains(e.Data, secret) || bytes.Contains(e.Data, []byte("b2xkLXZhbHVlLXRvLWVyYXNl")) {
			t.Fatalf("log entry %d still carries the old value", i)
		}
	}
	if v, err := l.Get("rows", "k"); err != nil || string(v) != "new" {
		t.Errorf("Get after Compact = %q, %v; want new", v, err)
	}
	if _, err := l.Put(ctx, "rows", "k2", []byte("x")); err != nil {
		t.Errorf("Put after Compact: %v", err)
	}
}

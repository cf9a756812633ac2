package ledger

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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
	if _, err := l.Compact(); err != nil {
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

// TestCompactErases: on an Erasable ledger with a storage key, records
// overwritten and deleted after a snapshot (small ones in the LSM tree,
// large ones in the value log) are in no file after Compact, as one with
// the key finds them (FindOnDisk: raw bytes, decrypted snapshots,
// write-ahead and value-log entries, every version of every key); the
// records kept are found, so the search can see them.
func TestCompactErases(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.EncryptionKey, cfg.Erasable = snapKey, true
	l := open(t, cfg)
	ctx := context.Background()
	small := func(i int) string { return fmt.Sprintf("ERASE-ME-%04d", i) }
	big := func(i int) string { return fmt.Sprintf("ERASE-BIG-%04d", i) + strings.Repeat("x", 4<<10) }
	kept := "KEEP-ME-0001"
	put := func(k, v string) {
		t.Helper()
		if _, err := l.Put(ctx, "rows", k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	put("kept", kept)
	for i := range 20 {
		put(fmt.Sprintf("s%d", i), small(i))
		put(fmt.Sprintf("b%d", i), big(i))
	}
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	put("after", "x") // a second snapshot, so that two are kept
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if i%2 == 0 {
			put(fmt.Sprintf("s%d", i), "overwritten")
			put(fmt.Sprintf("b%d", i), strings.Repeat("y", 4<<10))
		} else {
			if _, err := l.Delete(ctx, "rows", fmt.Sprintf("s%d", i)); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Delete(ctx, "rows", fmt.Sprintf("b%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := l.Compact()
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	t.Logf("Compact: %+v", st)
	if st.SnapshotsDeleted < 1 {
		t.Errorf("Compact deleted %d snapshots; want the older ones", st.SnapshotsDeleted)
	}
	if v, err := l.Get("rows", "kept"); err != nil || string(v) != kept {
		t.Fatalf("Get(kept) after Compact = %q, %v", v, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	needles := [][]byte{[]byte(kept)}
	for i := range 20 {
		needles = append(needles, []byte(small(i)), []byte(big(i))[:16])
	}
	found, err := FindOnDisk(cfg.Dir, snapKey, needles)
	if err != nil {
		t.Fatal(err)
	}
	keptSeen := map[string]bool{}
	for _, f := range found {
		if f.Needle == 0 {
			keptSeen[f.How] = true
			if f.How == "raw" {
				t.Errorf("kept record in plaintext: %v", f)
			}
			continue
		}
		t.Errorf("erased record found: %v", f)
	}
	if !keptSeen["database"] || !keptSeen["snapshot"] {
		t.Errorf("the kept record was found as %v; want in the database and the snapshot, or the search sees nothing", keptSeen)
	}
}

package raftbadger

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).
		WithMemTableSize(4 << 20).WithValueLogFileSize(16 << 20).WithBlockCacheSize(1 << 20).WithValueThreshold(64 << 10))
	if err != nil {
		t.Fatalf("open badger: %v", err)
	}
	return db
}

func mkLog(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: i / 3, Type: raft.LogCommand, Data: []byte{byte(i), 'x'},
		Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, int64(i)).UTC()}
}

func bounds(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil || f != first {
		t.Errorf("FirstIndex() = %d, %v; want %d", f, err, first)
	}
	l, err := s.LastIndex()
	if err != nil || l != last {
		t.Errorf("LastIndex() = %d, %v; want %d", l, err, last)
	}
}

func has(t *testing.T, s raft.LogStore, i uint64, want bool) {
	t.Helper()
	var got raft.Log
	err := s.GetLog(i, &got)
	switch {
	case want && err != nil:
		t.Errorf("GetLog(%d) = %v; want the entry", i, err)
	case want:
		w := mkLog(i)
		if got.Index != w.Index || got.Term != w.Term || got.Type != w.Type || !bytes.Equal(got.Data, w.Data) ||
			!bytes.Equal(got.Extensions, w.Extensions) || !got.AppendedAt.Equal(w.AppendedAt) {
			t.Errorf("GetLog(%d) = %+v; want %+v", i, got, *w)
		}
	case !errors.Is(err, raft.ErrLogNotFound):
		t.Errorf("GetLog(%d) = %v; want ErrLogNotFound", i, err)
	}
}

// TestContract runs the LogStore and StableStore contract on the bare store
// and on the store behind raft.NewLogCache, including reopening the database.
func TestContract(t *testing.T) {
	for _, cached := range []bool{false, true} {
		name := "bare"
		if cached {
			name = "logcache"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, dir)
			var s raft.LogStore = New(db, "r/")
			if cached {
				c, err := raft.NewLogCache(16, s)
				if err != nil {
					t.Fatal(err)
				}
				s = c
			}
			// Empty store.
			bounds(t, s, 0, 0)
			has(t, s, 1, false)

			// StoreLog and StoreLogs, with a gap after a DeleteRange.
			if err := s.StoreLog(mkLog(1)); err != nil {
				t.Fatalf("StoreLog: %v", err)
			}
			var batch []*raft.Log
			for i := uint64(2); i <= 100; i++ {
				batch = append(batch, mkLog(i))
			}
			if err := s.StoreLogs(batch); err != nil {
				t.Fatalf("StoreLogs: %v", err)
			}
			bounds(t, s, 1, 100)
			for _, i := range []uint64{1, 50, 100} {
				has(t, s, i, true)
			}
			has(t, s, 101, false)

			// Compaction from the front, then a truncation of the tail
			// (what raft does on a conflicting leader).
			if err := s.DeleteRange(1, 40); err != nil {
				t.Fatalf("DeleteRange(1, 40): %v", err)
			}
			bounds(t, s, 41, 100)
			has(t, s, 40, false)
			has(t, s, 41, true)
			if err := s.DeleteRange(91, 100); err != nil {
				t.Fatalf("DeleteRange(91, 100): %v", err)
			}
			bounds(t, s, 41, 90)
			has(t, s, 91, false)
			if err := s.DeleteRange(10, 5); err != nil {
				t.Fatalf("DeleteRange(10, 5): %v", err)
			}
			// A hole in the middle: bounds unchanged, the hole reads as missing.
			if err := s.DeleteRange(60, 62); err != nil {
				t.Fatalf("DeleteRange(60, 62): %v", err)
			}
			bounds(t, s, 41, 90)
			has(t, s, 61, false)
			has(t, s, 63, true)

			// Stable store.
			st := New(db, "r/")
			if _, err := st.Get([]byte("missing")); !errors.Is(err, ErrKeyNotFound) || err.Error() != "not found" {
				t.Errorf("Get(missing) = %v; want ErrKeyNotFound with text \"not found\"", err)
			}
			if _, err := st.GetUint64([]byte("missing")); !errors.Is(err, ErrKeyNotFound) {
				t.Errorf("GetUint64(missing) = %v; want ErrKeyNotFound", err)
			}
			if err := st.Set([]byte("k"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			if err := st.SetUint64([]byte("term"), 42); err != nil {
				t.Fatal(err)
			}
			// A second store under another prefix sees none of it.
			other := New(db, "q/")
			bounds(t, other, 0, 0)
			if _, err := other.Get([]byte("k")); !errors.Is(err, ErrKeyNotFound) {
				t.Errorf("other prefix Get(k) = %v; want ErrKeyNotFound", err)
			}

			// Reopen.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, dir)
			defer db.Close()
			s2 := New(db, "r/")
			bounds(t, s2, 41, 90)
			has(t, s2, 41, true)
			has(t, s2, 61, false)
			has(t, s2, 90, true)
			if v, err := s2.Get([]byte("k")); err != nil || string(v) != "v" {
				t.Errorf("Get(k) after reopen = %q, %v; want v", v, err)
			}
			if v, err := s2.GetUint64([]byte("term")); err != nil || v != 42 {
				t.Errorf("GetUint64(term) after reopen = %d, %v; want 42", v, err)
			}
			// Overwrite of an index (raft rewrites a truncated tail).
			l := mkLog(90)
			l.Term = 99
			if err := s2.StoreLog(l); err != nil {
				t.Fatal(err)
			}
			var got raft.Log
			if err := s2.GetLog(90, &got); err != nil || got.Term != 99 {
				t.Errorf("GetLog(90) after overwrite = term %d, %v; want 99", got.Term, err)
			}
		})
	}
}

// TestStoreLogsLarge stores a batch larger than one badger transaction.
func TestStoreLogsLarge(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := New(db, "r/")
	big := make([]byte, 64<<10)
	var logs []*raft.Log
	for i := uint64(1); i <= 200; i++ { // 12.5 MiB > the 4 MiB memtable's limit
		logs = append(logs, &raft.Log{Index: i, Term: 1, Data: big})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs of 12.5 MiB: %v", err)
	}
	bounds(t, s, 1, 200)
	var got raft.Log
	if err := s.GetLog(200, &got); err != nil || len(got.Data) != len(big) {
		t.Errorf("GetLog(200) = %d bytes, %v; want %d", len(got.Data), err, len(big))
	}
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(encodeLog(mkLog(7)))
	f.Add(encodeLog(&raft.Log{}))
	f.Add([]byte{logVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			return
		}
		var l2 raft.Log
		if err := decodeLog(encodeLog(&l), &l2); err != nil {
			t.Fatalf("decode(encode(%+v)): %v", l, err)
		}
		if l2.Index != l.Index || l2.Term != l.Term || l2.Type != l.Type || !bytes.Equal(l2.Data, l.Data) ||
			!bytes.Equal(l2.Extensions, l.Extensions) || !l2.AppendedAt.Equal(l.AppendedAt) {
			t.Errorf("round trip changed the entry: %+v -> %+v", l, l2)
		}
	})
}

package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// TestRecordsAndSnapshot: Put/Get/Scan/Delete, and a Raft snapshot that
// carries the records and the tree into a fresh state machine.
func TestRecordsAndSnapshot(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	ctx := context.Background()
	for i := range 3 {
		if _, err := l.Put(ctx, "pins", fmt.Sprintf("FR/%d", i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Put(ctx, "users", "alice", []byte("auditor")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Delete(ctx, "pins", "FR/1"); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := l.Scan("pins", "FR/", func(k string, v []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[FR/0 FR/2]" {
		t.Errorf("Scan(pins, FR/) = %v; want [FR/0 FR/2]", keys)
	}
	if v, err := l.Get("users", "alice"); err != nil || string(v) != "auditor" {
		t.Errorf("Get(users, alice) = %q, %v", v, err)
	}
	if _, err := l.Get("pins", "FR/1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a deleted record = %v; want ErrNotFound", err)
	}
	if _, err := l.Put(ctx, "", "k", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Put with an empty namespace = %v; want ErrInvalid", err)
	}
	appendN(t, l, 0, 7)
	_, wantRoot, _ := l.TreeHead()

	// Snapshot through Raft, then restore it into a new state machine.
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatalf("raft snapshot: %v", err)
	}
	snaps, err := raft.NewFileSnapshotStore(l.cfg.Dir+"/snapshots", 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		t.Fatalf("snapshots = %v, %v", list, err)
	}
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := newFSM(db, l.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if m := f.meta(); m.size != 7 || m.applied != list[0].Index {
		t.Errorf("restored meta = %+v; want 7 entries applied to %d", m, list[0].Index)
	}
	err = db.View(func(txn *badger.Txn) error {
		n, root, err := treeHead(txn)
		if err != nil {
			return err
		}
		if n != 7 || root != wantRoot {
			t.Errorf("restored tree = %d %x; want 7 %x", n, root, wantRoot)
		}
		v, ok, err := getBytes(txn, recordKey("users", "alice"))
		if err != nil || !ok || string(v) != "auditor" {
			t.Errorf("restored record users/alice = %q, %v, %v", v, ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzReadSnapshot(f *testing.F) {
	var good bytes.Buffer
	good.WriteString(snapshotMagic)
	for _, kv := range [][2]string{{"s/m/size", "\x00\x00\x00\x00\x00\x00\x00\x01"}, {"s/r/pins\x00FR", "v"}} {
		good.Write([]byte{0, 0, 0, byte(len(kv[0]))})
		good.WriteString(kv[0])
		good.Write([]byte{0, 0, 0, byte(len(kv[1]))})
		good.WriteString(kv[1])
	}
	good.Write([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(good.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Add(append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := readSnapshot(bytes.NewReader(b), func(k, v []byte) error {
			if !bytes.HasPrefix(k, []byte(prefixState)) {
				t.Errorf("readSnapshot passed a key outside the state: %q", k)
			}
			n++
			return nil
		})
		if err == nil && !bytes.HasSuffix(b, []byte{0xff, 0xff, 0xff, 0xff}) {
			t.Errorf("readSnapshot accepted a stream without its end mark")
		}
	})
}

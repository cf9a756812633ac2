package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// behindSnapshot builds a directory whose state is behind its latest Raft
// snapshot, as a crash between Raft saving a received snapshot and the
// state machine restoring it leaves one: 10 entries in the state, a
// snapshot at 20, 25 in the Raft log. It returns the directory and the
// root of the 25 entries.
func behindSnapshot(t *testing.T) (Config, tlog.Hash) {
	t.Helper()
	return behindSnapshotKey(t, nil)
}

// behindSnapshotKey is behindSnapshot for a directory encrypted with key.
func behindSnapshotKey(t *testing.T, key []byte) (Config, tlog.Hash) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.EncryptionKey = key
	l := open(t, cfg)
	appendN(t, l, 0, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "state")
	if out, err := exec.Command("cp", "-a", filepath.Join(cfg.Dir, "state"), old).CombinedOutput(); err != nil {
		t.Fatalf("copy state: %v: %s", err, out)
	}
	l = open(t, cfg)
	appendN(t, l, 10, 10)
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatalf("raft snapshot: %v", err)
	}
	appendN(t, l, 20, 5)
	_, root, err := l.TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cfg.Dir, "state")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(old, filepath.Join(cfg.Dir, "state")); err != nil {
		t.Fatal(err)
	}
	return cfg, root
}

// checkEntries checks that l holds exactly entries 0 to n-1 as appendN
// wrote them, with the given root.
func checkEntries(t *testing.T, l *Ledger, n int, root tlog.Hash) {
	t.Helper()
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != n {
		t.Errorf("%d entries; want %d", len(es), n)
	}
	for i, e := range es {
		if want := entry(i).RequestID; e.RequestID != want || e.Index != uint64(i) {
			t.Errorf("entry %d holds %s at index %d; want %s", i, e.RequestID, e.Index, want)
		}
	}
	if _, got, err := l.TreeHead(); err != nil || got != root {
		t.Errorf("root = %x, %v; want %x", got, err, root)
	}
}

// TestOpenStateBehindSnapshot: a state behind the latest snapshot is
// restored from it at Open, and the Raft log after it replays on top:
// no entry lost or renumbered.
func TestOpenStateBehindSnapshot(t *testing.T) {
	cfg, root := behindSnapshot(t)
	l := open(t, cfg)
	defer l.Close()
	checkEntries(t, l, 25, root)
	r, err := l.Append(context.Background(), entry(25))
	if err != nil || r.Index != 25 {
		t.Errorf("Append after recovery = %d, %v; want index 25", r.Index, err)
	}
}

// setRestoring marks the state of a closed directory as being restored
// and drops half its entries, as a crash in the middle of a restore
// leaves it.
func setRestoring(t *testing.T, cfg Config) {
	t.Helper()
	db, err := badger.Open(stateOptions(dbOptions(cfg.Dir, nil, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyRestore), []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	for i := uint64(5); i < 10; i++ {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(idxKey(pfxEntry, i)) }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenInterruptedRestore: a state marked as being restored is
// restored again from the latest snapshot at Open.
func TestOpenInterruptedRestore(t *testing.T) {
	cfg, root := behindSnapshot(t)
	setRestoring(t, cfg)
	l := open(t, cfg)
	defer l.Close()
	checkEntries(t, l, 25, root)
}

// TestOpenRefusesWithoutSnapshot: an interrupted restore with no snapshot
// to restore from makes Open refuse, saying what to do.
func TestOpenRefusesWithoutSnapshot(t *testing.T) {
	cfg, _ := behindSnapshot(t)
	setRestoring(t, cfg)
	if err := os.RemoveAll(filepath.Join(cfg.Dir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), cfg)
	if err == nil {
		l.Close()
		t.Fatal("Open of an interrupted restore without a snapshot succeeded")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "re-join") {
		t.Errorf("Open = %v; want ErrCorrupt that says to re-join the replica", err)
	}
}

// TestCheckDirectory: Check reports a state behind its snapshot as one the
// next Open restores, reports the healthy directory after that Open, and
// refuses a directory a replica runs on.
func TestCheckDirectory(t *testing.T) {
	cfg, root := behindSnapshot(t)
	ctx := context.Background()
	rep, err := Check(ctx, cfg.Dir, nil)
	if err != nil || rep.Recover == "" || rep.Size != 10 {
		t.Errorf("Check of a state behind its snapshot = %+v, %v; want 10 entries and a reason to restore", rep, err)
	}
	l := open(t, cfg)
	if _, err := Check(ctx, cfg.Dir, nil); err == nil {
		t.Errorf("Check of a running replica's directory succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(ctx, cfg.Dir, nil)
	if err != nil || rep.Recover != "" || rep.Size != 25 || rep.Root != root || rep.Checkpoint != 25 || rep.Verified != 25 {
		t.Errorf("Check after recovery = %+v, %v; want 25 entries, root %x, checkpoint and verified head at 25, nothing to restore", rep, err, root)
	}
}

// TestStartCheckRecordsHead: Open records the tree head it checked, so
// that the next start checks only what was added since.
func TestStartCheckRecordsHead(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.CheckpointInterval = time.Hour
	l := open(t, cfg)
	appendN(t, l, 0, 7)
	// Stop without Close, which would sign a checkpoint and record its head.
	close(l.stop)
	<-l.done
	l.raft.Shutdown().Error()
	l.trans.Close()
	l.raftDB.Close()
	l.db.Close()
	l = open(t, cfg)
	defer l.Close()
	var n uint64
	if err := l.db.View(func(txn *badger.Txn) error {
		v, _, err := getBytes(txn, []byte(keyVerified))
		if len(v) == 8+tlog.HashSize {
			n = binary.BigEndian.Uint64(v)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Errorf("verified head after Open at size %d; want 7", n)
	}
}

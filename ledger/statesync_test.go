package ledger

import (
	"context"
	"path/filepath"
	"testing"
)

// TestStateSyncFiles: the files whose writeback checkpointLoop starts
// ahead of the state syncs are found in the state directory (a memtable
// log and a value log after 1 KiB appends); were badger to name them
// otherwise, the state would still be synced, but in bursts that slow the
// Raft logs again, and this fails.
func TestStateSyncFiles(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	for i := range 20 {
		if _, err := l.Append(context.Background(), kib(i)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := unsyncedFiles(l.db.Opts().Dir, l.db.Opts().ValueDir)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, f := range files {
		found[filepath.Ext(f)]++
	}
	if found[".mem"] == 0 || found[".vlog"] == 0 {
		t.Errorf("unsynced state files %v: want a memtable log (.mem) and a value log (.vlog)", files)
	}
	if err := l.writeback(); err != nil {
		t.Fatal(err)
	}
	n := l.Status().StateSyncs
	if err := l.syncState(); err != nil {
		t.Fatal(err)
	}
	if got := l.Status().StateSyncs; got != n+1 {
		t.Errorf("StateSyncs after a sync = %d; want %d", got, n+1)
	}
}

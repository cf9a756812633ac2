package ledger

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Badger does not sync the state's writes (stateOptions); left to the
// kernel, they reach the disk late and all at once, and a sync of a few
// megabytes holds up the Raft logs' synced writes on the same disk for tens
// of milliseconds: the ledger's slowest appends (docs/ledger.md,
// "Throughput"). So checkpointLoop starts the writeback of the state's
// files every writebackInterval (writeback, without waiting for it) and
// syncs the state every stateSyncInterval (syncState), which then finds
// little left to write.
const (
	stateSyncInterval = 100 * time.Millisecond
	writebackInterval = 25 * time.Millisecond
)

// syncState syncs the state database to disk and counts it (Status).
func (l *Ledger) syncState() error {
	t := time.Now()
	err := l.db.Sync()
	l.stateSyncs.Add(1)
	l.stateSyncNanos.Add(uint64(time.Since(t)))
	return err
}

// writeback starts writing the state's unsynced pages to disk and returns
// without waiting. It only spreads the state's writes over time: what
// makes the state durable is syncState.
func (l *Ledger) writeback() error {
	files, err := unsyncedFiles(l.db.Opts().Dir, l.db.Opts().ValueDir)
	if err != nil {
		return err
	}
	for _, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // badger removed it meanwhile
		}
		if err != nil {
			return err
		}
		err = startWriteback(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// unsyncedExts are the extensions of the badger files that take writes
// without a sync (SyncWrites off): memtable logs and value logs. Badger
// syncs its tables when it writes them.
var unsyncedExts = []string{".mem", ".vlog"}

// unsyncedFiles lists the files of dirs that may hold unsynced writes.
func unsyncedFiles(dirs ...string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	for _, dir := range dirs {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			for _, ext := range unsyncedExts {
				if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ext) {
					files = append(files, filepath.Join(dir, e.Name()))
				}
			}
		}
	}
	return files, nil
}

package ledger

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// syncState syncs the state database to disk and counts it (Status).
//
// badger's Sync holds the database's lock while it syncs the memtable's
// log, and every write takes that lock: while a sync of a few megabytes
// waited for the disk, the state machine could not commit, and every
// caller on the leader waited with it (docs/ledger.md, "Throughput"). So
// the files that take unsynced writes are synced first through
// descriptors of their own, without the lock (presync), and badger's Sync,
// which remains what makes the state durable, finds little left to write.
func (l *Ledger) syncState() error {
	t := time.Now()
	err := presync(l.db.Opts().Dir, l.db.Opts().ValueDir)
	if err == nil {
		err = l.db.Sync()
	}
	l.stateSyncs.Add(1)
	l.stateSyncNanos.Add(uint64(time.Since(t)))
	return err
}

// unsyncedExts are the extensions of the badger files that take writes
// without a sync (SyncWrites off): memtable logs and value logs. Tables
// are synced by badger when written.
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

// presync fsyncs the state files that may hold unsynced writes. A
// descriptor of its own flushes the same page cache as badger's mapping
// (msync is fsync of the range on Linux); files that badger removes
// meanwhile are skipped.
func presync(dirs ...string) error {
	files, err := unsyncedFiles(dirs...)
	if err != nil {
		return err
	}
	for _, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

package ledger

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// CompactStats says what one Compact did on this replica: counts only.
type CompactStats struct {
	// SnapshotIndex is the Raft index of the one snapshot kept.
	SnapshotIndex uint64
	// SnapshotsDeleted counts the older snapshots deleted.
	SnapshotsDeleted int
	// FirstLogIndex is the lowest Raft log index left (0: none).
	FirstLogIndex uint64
	// ValueLogsRewritten counts the value-log files rewritten and deleted.
	ValueLogsRewritten int
}

// Compact makes deleted and overwritten records leave this replica's disk
// (docs/ledger.md, "Erasure"):
//
//  1. a Raft snapshot with no trailing log kept, so the log entries that
//     carried the old commands are deleted (when nothing is new since the
//     latest snapshot, the log is cut at that snapshot's index);
//  2. every snapshot but that one deleted;
//  3. in both databases (the state and the Raft log): with Erasable, the
//     value log moved to a new file; the memory tables flushed, so their
//     write-ahead files are deleted; the LSM tree flattened, so that older
//     versions and deleted keys are dropped from the tables; and every
//     value-log file but the one being written that holds any garbage
//     rewritten and deleted.
//
// While entries of this replica's Raft log wait to be applied (a tail
// that a deposed leader appended), it does nothing and returns
// ErrCompactLater.
//
// Each replica compacts its own disk; node calls it on every replica of
// the data group after a removal and on `xborder data compact`. It takes
// seconds (it writes a few memory tables of filler); writes continue
// meanwhile. A file deleted is gone from the file system; the blocks it
// used may stay on the device until reused, encrypted with the storage
// key when there is one (docs/holdings.md).
func (l *Ledger) Compact() (CompactStats, error) {
	var st CompactStats
	fail := func(step string, err error) (CompactStats, error) {
		return st, fmt.Errorf("compact ledger: %s: %w", step, err)
	}
	if last, applied := l.raft.LastIndex(), l.raft.AppliedIndex(); last > applied {
		return fail("raft log", fmt.Errorf("%w: entries %d to %d", ErrCompactLater, applied+1, last))
	}
	cur := l.raft.ReloadableConfig()
	keep := cur
	keep.TrailingLogs = 0
	if err := l.raft.ReloadConfig(keep); err != nil {
		return fail("configure", err)
	}
	err := l.raft.Snapshot().Error()
	if rerr := l.raft.ReloadConfig(cur); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fail("snapshot", err)
	}
	dir := filepath.Join(l.cfg.Dir, "snapshots", "snapshots") // raft.FileSnapshotStore adds the second
	latest, err := latestSnapshot(dir)
	if err != nil {
		return fail("snapshots", err)
	}
	store := raftStore(l.raftDB)
	if latest != nil {
		st.SnapshotIndex = latest.Index
		// Raft cut its log at the snapshot it just took; with nothing new
		// to snapshot, the entries up to the latest one may still be
		// there, kept as trailing log by an earlier snapshot.
		first, err := store.FirstIndex()
		if err != nil {
			return fail("raft log", err)
		}
		// An entry after the snapshot (one that arrived since) keeps the
		// snapshot's own entry, which Raft matches the leader's log with.
		upto := latest.Index
		if last, err := store.LastIndex(); err != nil {
			return fail("raft log", err)
		} else if last > latest.Index {
			upto--
		}
		if first != 0 && first <= upto {
			if err := store.DeleteRange(first, upto); err != nil {
				return fail("raft log", err)
			}
		}
		if st.SnapshotsDeleted, err = deleteOlderSnapshots(dir, latest.ID); err != nil {
			return fail("snapshots", err)
		}
	}
	if st.FirstLogIndex, err = store.FirstIndex(); err != nil {
		return fail("raft log", err)
	}
	for _, db := range []struct {
		name string
		db   *badger.DB
	}{{"state", l.db}, {"raft log", l.raftDB}} {
		n, err := eraseGarbage(db.db, l.cfg.Erasable, &l.fsm.gate)
		st.ValueLogsRewritten += n
		if err != nil {
			return fail(db.name, err)
		}
	}
	return st, nil
}

// deleteOlderSnapshots removes every snapshot directory in dir but keep,
// and temporary ones that Raft left behind over a minute ago; it returns
// how many.
func deleteOlderSnapshots(dir, keep string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() || e.Name() == keep {
			continue
		}
		if strings.HasSuffix(e.Name(), ".tmp") {
			// A snapshot being written now would lose its files.
			if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// keyCompact prefixes the filler keys eraseGarbage writes and deletes.
const keyCompact = "x/compact/"

// eraseGarbage makes db's garbage (older versions, deleted keys, values
// overwritten) leave its files: it moves the value log to a new file
// (rotate: an Erasable database, whose value-log files hold few entries),
// flushes the memory tables twice, so that their write-ahead files are
// deleted and level 0 holds at least two tables, flattens the LSM tree,
// which drops older versions and deleted keys, and rewrites every
// value-log file with garbage but the one being written. It returns the
// number of value-log files rewritten.
//
// Badger has no call that flushes a memory table or starts a value-log
// file while writes go on (DropPrefix blocks writes, and a write that
// meets the block fails), so eraseGarbage writes filler values, random
// and deleted again, until it has. Each value-log rewrite runs holding
// gate (the state machine's write gate, fsm.gate) exclusively.
func eraseGarbage(db *badger.DB, rotate bool, gate *sync.RWMutex) (int, error) {
	opts := db.Opts()
	if rotate {
		// Values just over the threshold go to the value log; one more
		// than a file takes starts a new file.
		if err := fill(db, "v", int(opts.ValueLogMaxEntries)+1, int(opts.ValueThreshold)+1, nil); err != nil {
			return 0, fmt.Errorf("value log: %w", err)
		}
	}
	for round := range 2 {
		if err := flushMemtables(db, fmt.Sprintf("m%d", round)); err != nil {
			return 0, fmt.Errorf("flush: %w", err)
		}
	}
	if err := db.Flatten(1); err != nil {
		return 0, fmt.Errorf("flatten: %w", err)
	}
	n := 0
	// Any garbage at all makes a file worth rewriting here; each pass
	// rewrites one file.
	for range maxValueLogGC {
		gate.Lock()
		err := db.RunValueLogGC(1e-9)
		gate.Unlock()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("value log: %w", err)
		}
		n++
	}
	return n, nil
}

// maxValueLogGC bounds the value-log files one Compact rewrites.
const maxValueLogGC = 10_000

// fill writes count filler values of size bytes under keyCompact+tag,
// then deletes them. With until, it writes rounds of count until until
// reports true, at most maxFillRounds rounds.
func fill(db *badger.DB, tag string, count, size int, until func() bool) error {
	v := make([]byte, size)
	if _, err := rand.Read(v); err != nil {
		return err
	}
	key := func(round, i int) []byte { return fmt.Appendf([]byte(keyCompact), "%s/%04d/%06d", tag, round, i) }
	rounds := 0
	write := func(del bool) error {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		for r := range rounds {
			for i := range count {
				var err error
				if del {
					err = wb.Delete(key(r, i))
				} else if r == rounds-1 {
					err = wb.Set(key(r, i), v)
				}
				if err != nil {
					return err
				}
			}
		}
		return wb.Flush()
	}
	for {
		rounds++
		if err := write(false); err != nil {
			return err
		}
		if until == nil || until() {
			break
		}
		if rounds == maxFillRounds {
			return errors.New("badger did not flush its memory table")
		}
	}
	return write(true)
}

// maxFillRounds bounds the rounds of filler flushMemtables writes: a
// round is a sixteenth of a memory table.
const maxFillRounds = 64

// flushMemtables writes filler until every write-ahead file of db's
// memory tables that existed when it started has been flushed and
// deleted.
func flushMemtables(db *badger.DB, tag string) error {
	dir := db.Opts().Dir
	old, err := memFiles(dir)
	if err != nil || len(old) == 0 {
		return err
	}
	gone := func() bool {
		now, err := memFiles(dir)
		if err != nil {
			return false
		}
		for _, f := range old {
			if slices.Contains(now, f) {
				return false
			}
		}
		return true
	}
	// Values under the threshold stay in the memory table and its
	// write-ahead file, which is full at MemTableSize bytes.
	size := min(int(db.Opts().ValueThreshold)-1, 64<<10)
	count := max(1, int(db.Opts().MemTableSize)/16/size)
	if err := fill(db, tag, count, size, func() bool {
		// The flush runs in the background: give it a moment.
		for range 20 {
			if gone() {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
		return false
	}); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for !gone() {
		if time.Now().After(deadline) {
			return errors.New("memory table not flushed within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// memFiles lists the write-ahead files of the memory tables in dir.
func memFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".mem") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ErrCompactLater: Compact found entries in this replica's Raft log that
// are not applied yet (a leader deposed before they committed leaves such
// a tail). A snapshot with no trailing log would then delete the entry at
// the snapshot's index, which Raft needs to match the new leader's log
// with its own, and the replica could never catch up. Nothing was done;
// compact again once the entries are applied or replaced (node's erasure
// loop retries at its next tick).
var ErrCompactLater = errors.New("raft log entries not applied yet: compact later")

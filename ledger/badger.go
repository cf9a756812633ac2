package ledger

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// badgerLogger sends badger's logs to slog; badger's info chatter goes to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}

// dbOptions are the options of the Raft log database of a ledger in dir,
// synced on every write; stateOptions derives the state database's.
func dbOptions(dir string, key []byte, log badger.Logger) badger.Options {
	opts := badger.DefaultOptions(filepath.Join(dir, "state")).
		WithSyncWrites(true).
		WithLogger(log).
		WithNumVersionsToKeep(1).
		WithMemTableSize(16 << 20).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(128 << 20).
		WithBlockCacheSize(16 << 20).
		WithNumCompactors(2)
	if len(key) > 0 {
		opts = opts.WithEncryptionKey(key).WithIndexCacheSize(16 << 20)
	}
	return opts
}

// stateOptions: the state needs no fsync per write (the Raft log is
// synced, and replaying it is idempotent); only the state machine writes
// replicated keys, one transaction at a time, so conflict detection is
// off; values of 1 KiB or more (entry bodies, batches of holdings) go to
// the value log once rather than through every LSM compaction.
func stateOptions(opts badger.Options) badger.Options {
	return opts.WithSyncWrites(false).WithDetectConflicts(false).WithValueThreshold(1 << 10)
}

// Erasable databases (Config.Erasable): value-log files start anew after
// erasableVlogEntries values (the Raft log's values are commands over 1
// MiB, hence fewer), memory tables hold erasableMemTable bytes, and one
// table at level 0 is enough to compact it, so that Compact's fillers stay
// small and its Flatten merges what the flushes wrote.
const (
	erasableVlogEntries     = 64
	erasableRaftVlogEntries = 4
	erasableMemTable        = 8 << 20 // badger wants a write batch, 15% of it, over the Raft log's value threshold (1 MiB)
)

// erasable adjusts the options of an Erasable database; entries is the
// value-log file's number of values.
func erasable(opts badger.Options, entries uint32) badger.Options {
	return opts.WithValueLogMaxEntries(entries).WithMemTableSize(erasableMemTable).WithNumLevelZeroTables(1)
}

package ledger

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// Compact makes deleted and overwritten records leave this replica's disk:
// it takes a Raft snapshot with no trailing log kept, so the log holding
// the old commands is truncated, then flattens the state database's LSM
// tree and runs value-log garbage collection on both databases. Each
// replica compacts its own disk; node calls it on every replica after a
// removal. It may take seconds on a large state; writes continue
// meanwhile.
func (l *Ledger) Compact() error {
	cur := l.raft.ReloadableConfig()
	keep := cur
	keep.TrailingLogs = 0
	if err := l.raft.ReloadConfig(keep); err != nil {
		return fmt.Errorf("compact ledger: %w", err)
	}
	err := l.raft.Snapshot().Error()
	if rerr := l.raft.ReloadConfig(cur); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("compact ledger: snapshot: %w", err)
	}
	if err := l.db.Flatten(1); err != nil {
		return fmt.Errorf("compact ledger: flatten: %w", err)
	}
	for _, db := range []*badger.DB{l.db, l.raftDB} {
		for {
			if err := db.RunValueLogGC(0.01); err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					return fmt.Errorf("compact ledger: value log: %w", err)
				}
				break
			}
		}
	}
	return nil
}

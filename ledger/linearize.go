package ledger

import (
	"context"
	"fmt"
	"time"
)

// Linearize waits until this replica has applied every command that was
// committed before the call: a read of this replica's state (Get, Scan,
// Entries, Entry, Outcome, TreeHead) made after Linearize returns is
// linearizable. It asks the leader for a read index (the leader commits a
// barrier of its term, which proves it still leads, and answers with its
// applied index) and waits for this replica to apply up to it. It fails
// with ErrNoQuorum when no leader answers within Config.WriteTimeout (or
// ctx's earlier deadline). Reads without it are stale reads: cheap, and
// at most as old as the replica's lag.
func (l *Ledger) Linearize(ctx context.Context) error {
	ctx, cancel := context.WithDeadline(ctx, deadlineOf(ctx, l.cfg.WriteTimeout))
	defer cancel()
	resp, err := l.onLeader(ctx, &fwdRequest{Op: fwdReadIndex})
	if err != nil {
		return fmt.Errorf("linearize read: %w", err)
	}
	if err := l.waitApplied(ctx, resp.Index); err != nil {
		return fmt.Errorf("linearize read: %w", err)
	}
	return nil
}

// LookupOutcome is Outcome after Linearize: the answer of any replica,
// current as of the call. ErrNotFound then means that no command with this
// ID was committed before the call (one still in flight may commit later:
// retrying it with the same command ID is always safe).
func (l *Ledger) LookupOutcome(ctx context.Context, id string) (Receipt, error) {
	if err := l.Linearize(ctx); err != nil {
		return Receipt{}, fmt.Errorf("look up command %s: %w", id, err)
	}
	return l.Outcome(id)
}

// waitApplied waits until the state machine has applied Raft index idx.
func (l *Ledger) waitApplied(ctx context.Context, idx uint64) error {
	for {
		l.fsm.mu.RLock()
		applied, ch := l.fsm.m.applied, l.fsm.applied
		l.fsm.mu.RUnlock()
		if applied >= idx {
			return nil
		}
		if err := l.fsm.halted(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for raft index %d (applied %d): %w", idx, applied, ErrNoQuorum)
		case <-l.stop:
			return ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
	}
}

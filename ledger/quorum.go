package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Quorum reports, from this replica's Raft state alone (no message sent,
// nothing waited for), whether it can commit a write now:
//
//   - it leads: nil. hashicorp/raft keeps a leader's lease itself: a leader
//     that has heard from no majority of voters within LeaderLeaseTimeout
//     (500 ms by default) steps down, so a leader cut off from its group
//     stops being one within about that time;
//   - it follows a leader it heard from (an AppendEntries or a heartbeat)
//     within the heartbeat timeout, Raft's own limit before it calls an
//     election (1 s by default): nil;
//   - it knows no leader (a candidate, a follower in an election, a replica
//     cut off from its group), or its leader has been silent longer than
//     that: an error wrapping ErrNoQuorum that says which;
//   - the state machine halted: ErrHalted; the ledger closed: ErrClosed.
//
// nil is no promise that the next write commits (the leader may fail
// meanwhile); an error is this replica's honest knowledge that a write
// would wait for a leader, and the write would fail with ErrNoQuorum after
// Config.WriteTimeout unless a leader appears. Use it, or FailFast, to
// answer "unavailable" at once rather than after that wait.
func (l *Ledger) Quorum() error {
	if err := l.fsm.halted(); err != nil {
		return err
	}
	if l.closed() {
		return ErrClosed
	}
	switch st := l.raft.State(); st {
	case raft.Leader:
		return nil
	case raft.Follower:
	default:
		return fmt.Errorf("this replica is a %s, no leader known: %w", st, ErrNoQuorum)
	}
	if _, id := l.raft.LeaderWithID(); id == "" {
		return fmt.Errorf("no leader known: %w", ErrNoQuorum)
	}
	rc := l.raft.ReloadableConfig()
	limit := max(rc.HeartbeatTimeout, rc.ElectionTimeout)
	if since := time.Since(l.raft.LastContact()); since > limit {
		return fmt.Errorf("no word from the leader for %v (more than %v): %w", since.Round(time.Millisecond), limit, ErrNoQuorum)
	}
	return nil
}

type failFastKey struct{}

// FailFast returns a context under which a write (Append, Admit, Put,
// Delete, Prune) or Linearize fails with ErrNoQuorum as soon as this
// replica knows it cannot commit (Quorum), before it is sent and between
// its retries, instead of waiting for a leader until the context's
// deadline or Config.WriteTimeout. The node writes what it must record
// before it answers a partner under it: a partner asking a replica cut
// off from its group gets "unavailable" at once and asks another replica.
// Without it a write rides out an election, as a local operator's write
// should.
func FailFast(ctx context.Context) context.Context {
	return context.WithValue(ctx, failFastKey{}, true)
}

// failFast reports whether ctx came from FailFast.
func failFast(ctx context.Context) bool {
	v, _ := ctx.Value(failFastKey{}).(bool)
	return v
}

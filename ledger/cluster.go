package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Membership and forwarding errors.
var (
	// ErrNotMember: the leader refused a forwarded request because this
	// replica is not in the cluster's configuration (never added, or
	// removed). Add it with AddVoter on a member, or stop it.
	ErrNotMember = errors.New("replica is not a member of the ledger cluster")
	// ErrUnreachable: AddVoter could not reach the new replica over the
	// authenticated transport, or it answered as another replica. Check
	// that it runs, its address, and that its certificate comes from the
	// agency CA and names the replica ID given; nothing was changed.
	ErrUnreachable = errors.New("replica unreachable over the ledger transport")
)

// Member is one server of the cluster's configuration.
type Member struct {
	ID       string // replica ID
	Addr     string // transport address
	Suffrage string // "Voter", "Nonvoter" or "Staging"
	Leader   bool   // whether this replica sees it as the leader
}

// Members lists the cluster's configuration as this replica knows it (the
// latest configuration in its log, committed or not).
func (l *Ledger) Members() ([]Member, error) {
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	_, leader := l.raft.LeaderWithID()
	var ms []Member
	for _, s := range f.Configuration().Servers {
		ms = append(ms, Member{ID: string(s.ID), Addr: string(s.Address), Suffrage: s.Suffrage.String(), Leader: s.ID == leader})
	}
	return ms, nil
}

// AddVoter adds the replica id, reachable at addr, to the cluster as a
// voter. Called on any member, it runs on the leader (forwarded when
// needed), which first checks that the replica answers as id over the
// authenticated transport (ErrUnreachable otherwise) and returns once the
// new configuration is committed. The new replica, opened with Bootstrap
// false, then receives the log or a snapshot from the leader. Adding a
// member again is a no-op.
func (l *Ledger) AddVoter(ctx context.Context, id, addr string) error {
	if _, err := l.onLeader(ctx, &fwdRequest{Op: fwdAddVoter, ID: id, Addr: addr}); err != nil {
		return fmt.Errorf("add replica %s: %w", id, err)
	}
	return nil
}

// RemoveServer removes the replica id from the cluster and returns once the
// new configuration is committed. Called on any member, it runs on the
// leader. Removing the leader itself works: it commits the configuration
// without itself, steps down, and the others elect a new leader. Removing a
// replica that is not a member is a no-op.
func (l *Ledger) RemoveServer(ctx context.Context, id string) error {
	if _, err := l.onLeader(ctx, &fwdRequest{Op: fwdRemove, ID: id}); err != nil {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	return nil
}

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

// isLeader reports whether this replica leads.
func (l *Ledger) isLeader() bool { return l.raft.State() == raft.Leader }

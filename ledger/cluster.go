package ledger

import (
	"context"
	"errors"
	"fmt"

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

// isLeader reports whether this replica leads.
func (l *Ledger) isLeader() bool { return l.raft.State() == raft.Leader }

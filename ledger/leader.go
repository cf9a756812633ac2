package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// deadlineOf is the earlier of ctx's deadline and now plus d.
func deadlineOf(ctx context.Context, d time.Duration) time.Time {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return deadline
}

// ctxDeadline is ctx's deadline, or the zero time.
func ctxDeadline(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

// onLeader runs req on the leader: here when this replica leads, else
// forwarded to it. While no leader answers it retries, until ctx's deadline
// or Config.WriteTimeout, then fails with ErrNoQuorum; under a FailFast
// context it fails with ErrNoQuorum as soon as Quorum says this replica
// cannot commit.
func (l *Ledger) onLeader(ctx context.Context, req *fwdRequest) (fwdResponse, error) {
	if dl := deadlineOf(ctx, l.cfg.WriteTimeout); !dl.Equal(ctxDeadline(ctx)) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	var last error
	for {
		if err := l.fsm.halted(); err != nil {
			return fwdResponse{}, err
		}
		if failFast(ctx) {
			if err := l.Quorum(); errors.Is(err, ErrNoQuorum) {
				if last != nil {
					return fwdResponse{}, fmt.Errorf("%w (%w)", err, last)
				}
				return fwdResponse{}, err
			}
		}
		var resp fwdResponse
		err := errRetry
		if l.raft.State() == raft.Leader {
			resp, err = l.local(ctx, req)
		} else if addr, id := l.raft.LeaderWithID(); id != "" && string(id) != l.cfg.ReplicaID {
			resp, err = l.forward(ctx, string(addr), req)
			if err == nil {
				err = resp.err()
			}
		}
		switch {
		case err == nil:
			return resp, nil
		case errors.Is(err, ErrClosed) && l.closed():
			return fwdResponse{}, ErrClosed
		case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotMember), errors.Is(err, ErrUnreachable):
			return fwdResponse{}, err
		case !errors.Is(err, errRetry):
			// A lost connection, a leader that could not commit in time:
			// the outcome is unknown, and the same request (same command
			// ID) is safe to send again.
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fwdResponse{}, fmt.Errorf("%w: %w", ErrNoQuorum, last)
			}
			return fwdResponse{}, ErrNoQuorum
		case <-l.stop:
			return fwdResponse{}, ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (l *Ledger) closed() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// await waits for a Raft future, or until this replica's Raft has shut
// down: hashicorp/raft never answers a future that was still queued, not
// yet dispatched, when it shut down. The goroutine that waits on such a
// future stays blocked; that happens only in that race at Close.
func (l *Ledger) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-l.raftDown:
		select {
		case err := <-done:
			return err
		default:
			return raft.ErrRaftShutdown
		}
	}
}

// haltCheck is how often a halted replica looks whether it leads.
const haltCheck = 50 * time.Millisecond

// stepDown waits until this replica's state machine halts, then, until
// Close, hands leadership over whenever the replica leads: a halted leader
// commits commands it cannot apply or answer, and the group could not
// write. The halted replica's Raft goes on as a follower: it keeps the log
// and votes, so the group keeps its quorum, and on restart the replica
// applies from where it stopped. It may still win an election (its log is
// as long as anyone's); it then hands over again at once. Status reports
// it unhealthy throughout.
func (l *Ledger) stepDown() {
	defer close(l.stepDone)
	select {
	case <-l.fsm.haltCh:
	case <-l.stop:
		return
	}
	t := time.NewTicker(haltCheck)
	defer t.Stop()
	warned := false
	for {
		if l.raft.State() == raft.Leader {
			err := l.await(l.raft.LeadershipTransfer())
			switch {
			case err == nil:
				l.log.Warn("halted replica handed leadership over", "leader", l.Status().Leader)
			case !warned:
				// Alone, or no follower is caught up: nothing to hand over to yet.
				l.log.Error("halted replica leads and cannot hand leadership over", "err", err)
				warned = true
			}
		}
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
	}
}

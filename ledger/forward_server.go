package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// serveForward accepts forwarding connections until the ledger closes.
func (l *Ledger) serveForward() {
	defer l.fwdWG.Done()
	for {
		c, err := l.demux.acceptKind(l.demux.fwdCh)
		if err != nil {
			return
		}
		l.fwdMu.Lock()
		if l.fwdClosed {
			l.fwdMu.Unlock()
			c.Close()
			return
		}
		l.fwdConns[c] = struct{}{}
		l.fwdWG.Add(1)
		l.fwdMu.Unlock()
		go l.handleForward(c)
	}
}

// handleForward answers the requests of one connection, one at a time.
// Only a peer that the transport authenticated (tlsnet.PeerID) is served,
// and only a member of the current configuration may ask for anything
// but a ping.
func (l *Ledger) handleForward(c net.Conn) {
	defer l.fwdWG.Done()
	defer func() {
		l.fwdMu.Lock()
		delete(l.fwdConns, c)
		l.fwdMu.Unlock()
		c.Close()
	}()
	peer, err := tlsnet.PeerID(c)
	if err != nil {
		l.log.Warn("forwarding connection from an unauthenticated peer refused", "remote", c.RemoteAddr().String())
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(fwdIdle))
		var req fwdRequest
		if err := readFrame(c, &req); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				l.log.Debug("forwarding connection", "peer", peer, "err", err)
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		var resp fwdResponse
		if req.Op != fwdPing && !l.isMember(peer) {
			l.log.Warn("forwarded request from a replica outside the configuration refused", "peer", peer, "op", req.Op)
			resp = fwdResponse{Code: codeNotMember}
		} else {
			timeout := min(time.Duration(req.Timeout), l.cfg.WriteTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			resp, _ = l.local(ctx, &req)
			cancel()
		}
		c.SetWriteDeadline(time.Now().Add(routeTimeout))
		if err := writeFrame(c, &resp); err != nil {
			return
		}
	}
}

func (l *Ledger) isMember(id string) bool {
	f := l.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// local runs req on this replica, which must lead; its error is errRetry
// when it does not (or no longer) lead, or the final error.
func (l *Ledger) local(ctx context.Context, req *fwdRequest) (fwdResponse, error) {
	if req.Op == fwdPing {
		return fwdResponse{Replica: l.cfg.ReplicaID, Now: l.cfg.Now().UnixNano()}, nil
	}
	if l.raft.State() != raft.Leader {
		return fwdResponse{Code: codeRetry}, errRetry
	}
	timeout := time.Until(deadlineOf(ctx, l.cfg.WriteTimeout))
	if timeout <= 0 {
		return fwdResponse{Code: codeNoQuorum}, ErrNoQuorum
	}
	fail := func(err error) (fwdResponse, error) {
		switch {
		case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, ErrNoQuorum):
			return fwdResponse{Code: codeNoQuorum}, ErrNoQuorum
		case errors.Is(err, ErrInvalid):
			return fwdResponse{Code: codeInvalid, Msg: err.Error()}, err
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore),
			errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, ErrClosed), errors.Is(err, ErrHalted):
			// Another replica will lead (this one is stepping down,
			// closing or halted): the caller tries again.
			return fwdResponse{Code: codeRetry, Msg: err.Error()}, errRetry
		}
		return fwdResponse{Code: codeFailed, Msg: err.Error()}, err
	}
	switch req.Op {
	case fwdCommand:
		if !req.local {
			c, err := decodeCommand(req.Command)
			if err != nil {
				return fail(fmt.Errorf("%w: %w", err, ErrInvalid))
			}
			if c.Op == opBatch {
				return fail(fmt.Errorf("forwarded batch: %w", ErrInvalid))
			}
			if err := c.check(); err != nil {
				return fail(fmt.Errorf("forwarded command: %w", err))
			}
		}
		// The leader's clock (Apply clamps it so that time never goes
		// back; checkClock, that it is not far ahead of a majority's),
		// and group commit with concurrent commands.
		if err := l.checkClock(l.cfg.Now()); err != nil {
			return fail(err)
		}
		o, err := l.commit(ctx, req.Command)
		if err != nil {
			return fail(err)
		}
		return fwdResponse{Outcome: &o}, nil
	case fwdAddVoter:
		if err := checkField(req.ID); err != nil || req.ID == "" || req.Addr == "" {
			return fail(fmt.Errorf("add voter: replica ID and address required: %w", ErrInvalid))
		}
		if l.Revoked(req.ID) {
			return fail(fmt.Errorf("add voter %s: %w: %w", req.ID, ErrRevoked, ErrInvalid))
		}
		// Refuse a replica that does not answer as itself over the
		// authenticated transport (wrong address, certificate from another
		// CA, another replica ID): adding it would only weaken the quorum.
		if err := l.ping(ctx, req.ID, req.Addr); err != nil {
			return fwdResponse{Code: codeUnreach, Msg: err.Error()}, fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		if err := l.await(l.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, timeout)); err != nil {
			return fail(err)
		}
		return fwdResponse{}, nil
	case fwdRemove:
		if req.ID == "" {
			return fail(fmt.Errorf("remove server: replica ID required: %w", ErrInvalid))
		}
		if err := l.await(l.raft.RemoveServer(raft.ServerID(req.ID), 0, timeout)); err != nil {
			return fail(err)
		}
		return fwdResponse{}, nil
	case fwdReadIndex:
		// The barrier commits an entry of this term through the leader, so
		// every command committed before the read began is applied here
		// when it returns; its applied index is the read index.
		if err := l.await(l.raft.Barrier(timeout)); err != nil {
			return fail(err)
		}
		return fwdResponse{Index: l.fsm.meta().applied}, nil
	}
	return fail(fmt.Errorf("forwarded operation %q: %w", req.Op, ErrInvalid))
}

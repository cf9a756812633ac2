package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/tlsnet"
)

// ChanJoin is the replica transport channel on which a new replica asks a
// member to add it to both Raft groups.
const ChanJoin = "join"

const (
	nsRemoved     = "replicas_removed" // key: replica ID of a removed replica; it may not join again
	joinTimeout   = 30 * time.Second   // one join request, both groups
	joinRetry     = time.Second        // pause between join attempts
	maxJoinFrame  = 4 << 10
	joinDialLimit = 5 * time.Second
)

// joinRequest is what a new replica sends on the join channel; its
// replica ID is the one its certificate names (tlsnet.PeerID), never a
// field of the request.
type joinRequest struct {
	Raft string `json:"raft"` // the new replica's transport address
}

type joinResponse struct {
	Error string `json:"error,omitempty"`
}

// parseJoinRequest decodes one join request line.
func parseJoinRequest(line []byte) (joinRequest, error) {
	var req joinRequest
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("decode join request: %w", err)
	}
	host, port, err := net.SplitHostPort(req.Raft)
	if err != nil || host == "" || port == "" {
		return req, fmt.Errorf("join request: transport address %q is not host:port", req.Raft)
	}
	return req, nil
}

// serveJoin answers join requests until the layer closes.
func (n *Node) serveJoin(l *tlsnet.Layer) {
	defer n.joinWG.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				n.log.Warn("join channel", "err", err)
			}
			return
		}
		n.joinWG.Add(1)
		go func() {
			defer n.joinWG.Done()
			n.handleJoin(c)
		}()
	}
}

// handleJoin adds the replica that the connection's certificate names to
// both groups, unless it was removed before.
func (n *Node) handleJoin(c net.Conn) {
	defer c.Close()
	c.SetDeadline(n.now().Add(joinTimeout + 5*time.Second))
	id, err := tlsnet.PeerID(c)
	if err != nil {
		n.log.Warn("join request without a replica identity", "err", err)
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxJoinFrame)).ReadBytes('\n')
	var req joinRequest
	if err == nil {
		req, err = parseJoinRequest(line)
	}
	if err != nil {
		n.log.Warn("bad join request", "replica", id, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	err = n.addReplica(ctx, id, req.Raft)
	resp := joinResponse{}
	if err != nil {
		resp.Error = err.Error()
		n.log.Warn("join refused", "replica", id, "addr", req.Raft, "err", err)
	} else {
		n.log.Info("replica joined", "replica", id, "addr", req.Raft)
	}
	b, _ := json.Marshal(resp)
	c.Write(append(b, '\n'))
}

// addReplica adds replica id at addr to both groups and records it.
func (n *Node) addReplica(ctx context.Context, id, addr string) error {
	if _, err := n.aud.Get(nsRemoved, id); err == nil {
		return fmt.Errorf("replica %s was removed; issue a bundle with a new replica ID", id)
	}
	if n.isMember(id) {
		return nil
	}
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypeReplica, Outcome: ledger.OutcomeOK},
			Body:   ledger.Body{Actor: "replica:" + id, Purpose: "add replica " + id + " at " + addr},
		})
	}); err != nil {
		return err
	}
	for _, g := range n.groups() {
		if err := g.l.AddVoter(ctx, id, addr); err != nil {
			return fmt.Errorf("%s group: %w", g.name, err)
		}
	}
	return nil
}

// isMember reports whether replica id is in both groups' configurations.
func (n *Node) isMember(id string) bool {
	for _, g := range n.groups() {
		ms, err := g.l.Members()
		if err != nil || !slices.ContainsFunc(ms, func(m ledger.Member) bool { return m.ID == id }) {
			return false
		}
	}
	return true
}

// joinLoop asks the members at fc.Join to add this replica, until it is a
// member of both groups or the node closes.
func (n *Node) joinLoop() {
	defer n.joinWG.Done()
	for !n.isMember(n.fc.ReplicaID()) {
		for _, addr := range n.fc.Join {
			err := n.askJoin(addr)
			if err == nil {
				break
			}
			n.log.Info("join attempt", "via", addr, "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-time.After(joinRetry):
		}
	}
	n.log.Info("member of both groups")
}

// askJoin sends one join request to the member at addr.
func (n *Node) askJoin(addr string) error {
	c, err := n.mux.Layer(ChanJoin).Dial(raft.ServerAddress(addr), joinDialLimit)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(n.now().Add(joinTimeout + 5*time.Second))
	b, _ := json.Marshal(joinRequest{Raft: n.mux.Addr().String()})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxJoinFrame)).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read join answer: %w", err)
	}
	var resp joinResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("read join answer: %w", err)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	return nil
}

// RemoveReplica removes replica id from both groups (an audit entry), and
// keeps it from joining again with its certificate.
func (n *Node) RemoveReplica(ctx context.Context, actor, id string) error {
	if !n.isMember(id) {
		if _, err := n.aud.Get(nsReplicas, id); errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("remove replica %s: not a member: %w", id, httpapi.ErrNotFound)
		}
	}
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypeReplica, Outcome: ledger.OutcomeOK},
			Body:   ledger.Body{Actor: actor, Purpose: "remove replica " + id},
		})
	}); err != nil {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	if _, err := n.aud.Put(ctx, nsRemoved, id, []byte(n.now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	for _, g := range []group{{GroupData, n.data}, {GroupAudit, n.aud}} {
		if err := g.l.RemoveServer(ctx, id); err != nil {
			return fmt.Errorf("remove replica %s from the %s group: %w", id, g.name, err)
		}
		// Its certificate may no longer open the group's channel.
		if err := g.l.Revoke(ctx, id); err != nil {
			return fmt.Errorf("remove replica %s: revoke in the %s group: %w", id, g.name, err)
		}
	}
	if _, err := n.aud.Delete(ctx, nsReplicas, id); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	return nil
}

package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/xborder/xborder/internal/card"

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

// peerHost is this replica's libp2p identity and listen addresses
// (*Host).
type peerHost interface {
	ID() peer.ID
	Addrs() []ma.Multiaddr
}

// replicaTransport is the replica transport (*tlsnet.Mux): its address and
// its channels, of which the join channel is this component's.
type replicaTransport interface {
	Addr() net.Addr
	Layer(name string) *tlsnet.Layer
}

// replicaSetConfig is what a replicaSet is built from.
type replicaSetConfig struct {
	ID        string      // this replica's ID
	Dir       string      // the data directory: the CA and secrets a bundle packs
	File      *FileConfig // agency, name and card validity a bundle carries
	Audit     *raftGroup  // replica records and entries; membership
	Data      *raftGroup  // membership
	Host      peerHost
	Transport replicaTransport
	Now       func() time.Time
	Log       *slog.Logger
}

// replicaSet is the agency's replicas: the records each keeps of itself in
// the audit group (for the card and the gater), membership of both Raft
// groups (the join server, the join loop of a new replica, removal), and
// the join bundles that let a new replica in. Its goroutines (the join
// server and its handlers, the join loop) end when the transport closes
// and, for the join loop, when the stop channel closes; wait returns when
// they have.
type replicaSet struct {
	cfg replicaSetConfig
	wg  sync.WaitGroup
}

// newReplicaSet returns the replicas of cfg; serve and join start its
// goroutines.
func newReplicaSet(cfg replicaSetConfig) *replicaSet { return &replicaSet{cfg: cfg} }

// serve answers join requests on l until it closes.
func (s *replicaSet) serve(l *tlsnet.Layer) {
	s.wg.Add(1)
	go s.serveJoin(l)
}

// join asks the members at addrs to add this replica, in the background,
// until it is a member or stop closes.
func (s *replicaSet) join(addrs []string, stop <-chan struct{}) {
	s.wg.Add(1)
	go s.joinLoop(addrs, stop)
}

// wait returns when the join server, its handlers and the join loop have
// ended.
func (s *replicaSet) wait() { s.wg.Wait() }

// recordSelf keeps this replica's record (peer ID, addresses, transport
// address) current in the audit group, so that the agency card lists it
// and every replica's gater admits it. Errors are logged and retried.
func (s *replicaSet) recordSelf() {
	rec := s.replicaRecord()
	if old, err := s.cfg.Audit.Get(nsReplicas, s.cfg.ID); err == nil && string(old) == string(rec) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Audit.Put(ctx, nsReplicas, s.cfg.ID, rec); err != nil {
		s.cfg.Log.Warn("record replica", "err", err)
	}
}

// replicaRecord is what a replica records about itself in the audit
// group, so that the agency card lists every replica.
type replicaRecord struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	Raft   string   `json:"raft"`
}

// replicaRecord is this replica's record, as recordSelf keeps it.
func (s *replicaSet) replicaRecord() []byte {
	r := replicaRecord{PeerID: s.cfg.Host.ID().String(), Raft: s.cfg.Transport.Addr().String()}
	for _, a := range s.cfg.Host.Addrs() {
		r.Addrs = append(r.Addrs, a.String())
	}
	b, _ := json.Marshal(r)
	return b
}

// replicas returns the agency's replicas as the card lists them: those
// recorded in the audit group, and this replica in any case.
func (s *replicaSet) replicas() []card.Replica {
	var own replicaRecord
	json.Unmarshal(s.replicaRecord(), &own)
	byID := map[string]card.Replica{s.cfg.ID: {PeerID: own.PeerID, Addrs: own.Addrs}}
	s.cfg.Audit.Scan(nsReplicas, "", func(id string, v []byte) error {
		var r replicaRecord
		if json.Unmarshal(v, &r) == nil && id != s.cfg.ID && len(r.Addrs) > 0 {
			byID[id] = card.Replica{PeerID: r.PeerID, Addrs: r.Addrs}
		}
		return nil
	})
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]card.Replica, 0, len(ids))
	for _, id := range ids {
		if len(out) < card.MaxReplicas {
			out = append(out, byID[id])
		}
	}
	return out
}

// serveJoin answers join requests until the layer closes.
func (s *replicaSet) serveJoin(l *tlsnet.Layer) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.cfg.Log.Warn("join channel", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleJoin(c)
		}()
	}
}

// handleJoin adds the replica that the connection's certificate names to
// both groups, unless it was removed before.
func (s *replicaSet) handleJoin(c net.Conn) {
	defer c.Close()
	c.SetDeadline(s.cfg.Now().Add(joinTimeout + 5*time.Second))
	id, err := tlsnet.PeerID(c)
	if err != nil {
		s.cfg.Log.Warn("join request without a replica identity", "err", err)
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxJoinFrame)).ReadBytes('\n')
	var req joinRequest
	if err == nil {
		req, err = parseJoinRequest(line)
	}
	if err != nil {
		s.cfg.Log.Warn("bad join request", "replica", id, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	err = s.addReplica(ctx, id, req.Raft)
	resp := joinResponse{}
	if err != nil {
		resp.Error = err.Error()
		s.cfg.Log.Warn("join refused", "replica", id, "addr", req.Raft, "err", err)
	} else {
		s.cfg.Log.Info("replica joined", "replica", id, "addr", req.Raft)
	}
	b, _ := json.Marshal(resp)
	c.Write(append(b, '\n'))
}

// addReplica adds replica id at addr to both groups and records it.
func (s *replicaSet) addReplica(ctx context.Context, id, addr string) error {
	if _, err := s.cfg.Audit.Get(nsRemoved, id); err == nil {
		return fmt.Errorf("replica %s was removed; issue a bundle with a new replica ID", id)
	}
	if s.isMember(id) {
		return nil
	}
	if _, err := s.cfg.Audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeReplica, Outcome: ledger.OutcomeOK},
		Body:   ledger.Body{Actor: "replica:" + id, Purpose: "add replica " + id + " at " + addr},
	}); err != nil {
		return err
	}
	for _, g := range []*raftGroup{s.cfg.Audit, s.cfg.Data} {
		if err := g.AddVoter(ctx, id, addr); err != nil {
			return fmt.Errorf("%s group: %w", g.name, err)
		}
	}
	return nil
}

// isMember reports whether replica id is in both groups' configurations.
func (s *replicaSet) isMember(id string) bool {
	for _, g := range []*raftGroup{s.cfg.Audit, s.cfg.Data} {
		ms, err := g.Members()
		if err != nil || !slices.ContainsFunc(ms, func(m ledger.Member) bool { return m.ID == id }) {
			return false
		}
	}
	return true
}

// joinLoop asks the members at addrs to add this replica, until it is a
// member of both groups or stop closes.
func (s *replicaSet) joinLoop(addrs []string, stop <-chan struct{}) {
	defer s.wg.Done()
	for !s.isMember(s.cfg.ID) {
		for _, addr := range addrs {
			err := s.askJoin(addr)
			if err == nil {
				break
			}
			s.cfg.Log.Info("join attempt", "via", addr, "err", err)
		}
		select {
		case <-stop:
			return
		case <-time.After(joinRetry):
		}
	}
	s.cfg.Log.Info("member of both groups")
}

// askJoin sends one join request to the member at addr.
func (s *replicaSet) askJoin(addr string) error {
	c, err := s.cfg.Transport.Layer(ChanJoin).Dial(raft.ServerAddress(addr), joinDialLimit)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(s.cfg.Now().Add(joinTimeout + 5*time.Second))
	b, _ := json.Marshal(joinRequest{Raft: s.cfg.Transport.Addr().String()})
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
func (s *replicaSet) RemoveReplica(ctx context.Context, actor, id string) error {
	if !s.isMember(id) {
		if _, err := s.cfg.Audit.Get(nsReplicas, id); errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("remove replica %s: not a member: %w", id, httpapi.ErrNotFound)
		}
	}
	if _, err := s.cfg.Audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeReplica, Outcome: ledger.OutcomeOK},
		Body:   ledger.Body{Actor: actor, Purpose: "remove replica " + id},
	}); err != nil {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	if _, err := s.cfg.Audit.Put(ctx, nsRemoved, id, []byte(s.cfg.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	for _, g := range []*raftGroup{s.cfg.Data, s.cfg.Audit} {
		if err := g.RemoveServer(ctx, id); err != nil {
			return fmt.Errorf("remove replica %s from the %s group: %w", id, g.name, err)
		}
		// Its certificate may no longer open the group's channel.
		if err := g.Revoke(ctx, id); err != nil {
			return fmt.Errorf("remove replica %s: revoke in the %s group: %w", id, g.name, err)
		}
	}
	if _, err := s.cfg.Audit.Delete(ctx, nsReplicas, id); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	return nil
}

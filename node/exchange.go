package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/psi"
)

// ErrNotPinned: the agency named is not a pinned partner of this node (or
// its card is no longer in force). Pin its card first.
var ErrNotPinned = errors.New("agency not pinned")

// exchangeServer builds the server of the node-to-node protocols from
// methods of the node: the matching side (pinnedKeys, admitter, responders)
// and the holdings side (sets, sync authorisation and audit) when present.
func (n *Node) exchangeServer() (*exchange.Server, error) {
	cfg := exchange.ServerConfig{
		Agency:     n.fc.Agency,
		Signer:     n.key,
		Keys:       (*pinnedKeys)(n),
		Admitter:   (*admitter)(n),
		Responders: (*responders)(n),
		// The holdings side (sync.go).
		Sets:           n.syncOwner,
		SyncAuthorizer: n.syncOwner,
		SyncAuditor:    n.syncOwner,
		Clock:          n.now,
		Logger:         n.log,
	}
	return exchange.NewServer(cfg)
}

// exchangeClient builds the client with which this node asks partners.
func (n *Node) exchangeClient() (*exchange.Client, error) {
	return exchange.NewClient(exchange.ClientConfig{
		Agency: n.fc.Agency,
		Signer: n.key,
		Keys:   (*pinnedKeys)(n),
		Cards:  n.cardChecker,
		Clock:  n.now,
	})
}

// startExchange builds the exchange server and client and registers the
// match protocol on the host. It is called once by start.
func (n *Node) startExchange() error {
	srv, err := n.exchangeServer()
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	cl, err := n.exchangeClient()
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	n.xsrv, n.xcl = srv, cl
	n.mm = newMatchMetrics(n.met.reg)
	n.host.Handle(exchange.ProtoMatch, srv.HandleMatch)
	n.host.Handle(exchange.ProtoSync, srv.HandleSync)
	return nil
}

// pinnedKeys adapts the node's pins to exchange.Keys.
type pinnedKeys Node

// AgencyKey returns the agency key of a pinned partner card in force.
func (k *pinnedKeys) AgencyKey(agency string) (ed25519.PublicKey, error) {
	n := (*Node)(k)
	n.mu.Lock()
	c, ok := n.pins[agency]
	n.mu.Unlock()
	if !ok || agency == n.fc.Agency {
		return nil, fmt.Errorf("agency key of %s: %w", agency, ErrNotPinned)
	}
	return c.Key, nil
}

// holdingsSeams are the methods the holdings engineer's part of the node
// provides (node/holdings*.go, node/sync*.go): the responder of a kind and
// epoch, the epoch answering queries, and a partner's synced set.
type holdingsSeams interface {
	responder(kind string, epoch uint64) (r *psi.Responder, version uint64, ok bool)
	currentEpoch() uint64
	partnerSet(ctx context.Context, partner, kind string) (s *psi.Set, key *psi.PublicKey, epoch uint64, fresh bool, err error)
}

// errNoHoldings: this build of the node has no holdings part, so it holds
// no sets to answer or to query against.
var errNoHoldings = errors.New("this node holds no encoded sets")

// seams returns the holdings part of the node.
func (n *Node) seams() (holdingsSeams, error) {
	h, ok := any(n).(holdingsSeams)
	if !ok {
		return nil, errNoHoldings
	}
	return h, nil
}

// responders adapts the node's precomputed keys and sets to
// exchange.Responders.
type responders Node

// Responder returns the evaluator of (kind, epoch), timed for the crypto
// stage metric, or exchange.ErrNoSet.
func (r *responders) Responder(kind string, epoch uint64) (exchange.Evaluator, uint32, error) {
	n := (*Node)(r)
	h, err := n.seams()
	if err != nil {
		return nil, 0, fmt.Errorf("responder of %s epoch %d: %w: %w", kind, epoch, exchange.ErrNoSet, err)
	}
	ev, version, ok := h.responder(kind, epoch)
	if !ok || ev == nil {
		return nil, 0, fmt.Errorf("responder of %s epoch %d: %w", kind, epoch, exchange.ErrNoSet)
	}
	if version > 1<<32-1 {
		return nil, 0, fmt.Errorf("responder of %s epoch %d: set version %d out of range", kind, epoch, version)
	}
	return timedEvaluator{ev: ev, m: n.mm}, uint32(version), nil
}

// timedEvaluator records the time of each evaluation as the inbound crypto
// stage.
type timedEvaluator struct {
	ev exchange.Evaluator
	m  *matchMetrics
}

func (t timedEvaluator) Evaluate(req *psi.EvalRequest, rnd io.Reader) (*psi.Evaluation, error) {
	start := time.Now()
	ev, err := t.ev.Evaluate(req, rnd)
	t.m.stage("in", "crypto", start)
	return ev, err
}

package node

import (
	"context"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/psi"
)

// Bridges of engineer A (NODE_PLAN.md rule 3), for the lead to re-point
// at merge.

// pinned returns the card pinned for agency (the card checker's view of
// the pins, which the partners' component owns).
func (n *Node) pinned(agency string) (*card.Card, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.pins[agency]
	return c, ok
}

// The methods below forward what engineer B's files (exchange.go seams,
// query.go expireCopy, partners.go OwnCard) still call on Node to the
// holdings' components, so those files compile unchanged here. They go
// when B's files call the components.

func (n *Node) responder(kind string, epoch uint64) (*psi.Responder, uint64, bool) {
	return n.sets.responder(kind, epoch)
}

func (n *Node) currentEpoch() uint64 { return n.epochs.currentEpoch() }

func (n *Node) partnerSet(ctx context.Context, partner, kind string) (*psi.Set, *psi.PublicKey, uint64, bool, error) {
	return n.partnerSets.partnerSet(ctx, partner, kind)
}

func (n *Node) partnerCopy(partner, kind string) *partnerCopy {
	return n.partnerSets.partnerCopy(partner, kind)
}

func (n *Node) cardEpochKeys() []card.EpochKey { return n.epochs.cardEpochKeys() }

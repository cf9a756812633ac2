package node

import (
	"context"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
)

// This file bridges engineer B's components (matching and administration)
// and the parts of Node that other engineers own, until the lead merges the
// branches. Nothing here holds behaviour of its own.

// expireCopy makes the next partnerSet of (partner, kind) sync first: the
// partner answered from a newer set version or epoch than our copy. It
// reads the partners' set copies (holdings): the querier uses it through
// partnerSets; at merge it moves to the component that owns the copies.
func (n *Node) expireCopy(partner, kind string) {
	pc := n.partnerCopy(partner, kind)
	pc.mu.Lock()
	pc.synced = time.Time{}
	pc.mu.Unlock()
}

// Forwarders for the holdings files of this worktree (sync.go), which call
// these methods on Node; after merge they reach the cards component
// through their own interfaces, and these go.

// Pins returns the verified pinned partner cards by agency code.
func (n *Node) Pins() map[string]*card.Card { return n.cards.Pins() }

// OwnCard returns the agency's signed card.
func (n *Node) OwnCard() (*card.Card, error) { return n.cards.OwnCard() }

// PinCard pins a partner's card (see cards.PinCard).
func (n *Node) PinCard(ctx context.Context, actor string, c *card.Card, fingerprint string) (httpapi.Partner, error) {
	return n.cards.PinCard(ctx, actor, c, fingerprint)
}

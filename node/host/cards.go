package host

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/xborder/xborder/internal/card"
)

// Errors of CheckCard and SetCards.
var (
	// ErrBadReplica: a replica's peer ID does not decode or one of its
	// addresses is not a multiaddr of that peer. The card cannot be pinned:
	// ask the partner for a corrected card.
	ErrBadReplica = errors.New("replica the allow set cannot take")
	// ErrPeerClaimed: a replica's peer ID is on the card of another agency,
	// this one's or a pinned partner's. The card cannot be pinned while the
	// other card holds that peer: a peer ID is one agency's only.
	ErrPeerClaimed = errors.New("peer ID held by another agency")
)

// CheckCard reports whether the allow set can take every replica of c
// beside the cards held (this agency's own and the other pinned cards): each
// peer ID decodes, each address parses as a multiaddr of that peer, and no
// peer ID is on a held card of another agency. Check a card before pinning
// it, so that a pin never holds what SetCards must leave out.
func CheckCard(c *card.Card, held ...*card.Card) error {
	holder := make(map[string]string)
	for _, h := range held {
		if h.Agency == c.Agency {
			continue
		}
		for _, r := range h.Replicas {
			if id, err := peer.Decode(r.PeerID); err == nil {
				holder[id.String()] = h.Agency
			}
		}
	}
	for _, r := range c.Replicas {
		id, _, err := parseReplica(r)
		if err != nil {
			return fmt.Errorf("card of %s: %w", c.Agency, err)
		}
		if other, ok := holder[id.String()]; ok {
			return fmt.Errorf("card of %s: replica %s is on the card of %s: %w", c.Agency, id, other, ErrPeerClaimed)
		}
	}
	return nil
}

// allowOf builds the allow set of cards (peer ID to agency code) and the
// transport addresses of each peer. The first card (the agency's own) keeps
// every peer it lists; a peer that two later cards of different agencies
// claim goes to neither; a replica whose peer ID or an address does not
// parse is left out. The error names every replica left out; the rest of
// the allow set stands.
func allowOf(cards []*card.Card) (map[peer.ID]string, map[peer.ID][]ma.Multiaddr, error) {
	allowed := make(map[peer.ID]string)
	addrs := make(map[peer.ID][]ma.Multiaddr)
	first := make(map[peer.ID]string) // the first agency to list each peer
	own := make(map[peer.ID]bool)
	var errs []error
	for i, c := range cards {
		for _, r := range c.Replicas {
			id, as, err := parseReplica(r)
			if err != nil {
				errs = append(errs, fmt.Errorf("card of %s: %w", c.Agency, err))
				continue
			}
			if other, ok := first[id]; ok && other != c.Agency {
				errs = append(errs, fmt.Errorf("card of %s: replica %s is on the card of %s: %w", c.Agency, id, other, ErrPeerClaimed))
				if !own[id] {
					delete(allowed, id)
					delete(addrs, id)
				}
				continue
			}
			if _, ok := first[id]; ok && allowed[id] == "" {
				continue // contested before
			}
			first[id], allowed[id] = c.Agency, c.Agency
			own[id] = own[id] || i == 0
			addrs[id] = append(addrs[id], as...)
		}
	}
	return allowed, addrs, errors.Join(errs...)
}

// parseReplica decodes a replica's peer ID and its addresses (their
// transport parts).
func parseReplica(r card.Replica) (peer.ID, []ma.Multiaddr, error) {
	id, err := peer.Decode(r.PeerID)
	if err != nil {
		return "", nil, fmt.Errorf("replica %q: peer ID: %w: %w", r.PeerID, ErrBadReplica, err)
	}
	as, err := parseAddrs(id, r.Addrs)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadReplica, err)
	}
	return id, as, nil
}

// parseAddrs parses the multiaddrs of peer id, each of which may end in
// /p2p/ID only with id itself, into their transport parts.
func parseAddrs(id peer.ID, addrs []string) ([]ma.Multiaddr, error) {
	parsed := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("set addresses of %s: %q: %w", id, s, err)
		}
		tpt, pid := peer.SplitAddr(a)
		if pid != "" && pid != id {
			return nil, fmt.Errorf("set addresses of %s: %q names peer %s", id, s, pid)
		}
		if tpt == nil {
			return nil, fmt.Errorf("set addresses of %s: %q has no transport part", id, s)
		}
		parsed = append(parsed, tpt)
	}
	return parsed, nil
}

// SetCards makes the replicas of cards the allow set, each with its card's
// agency code, and records their addresses: pass the agency's own card
// first, then every pinned partner's card in force, verified. A replica the
// allow set cannot take (see allowOf) is left out and named in the error,
// wrapping ErrBadReplica or ErrPeerClaimed; the rest is applied all the
// same, so that one bad card never freezes or empties the allow set.
func (h *Host) SetCards(cards ...*card.Card) error {
	allowed, addrs, err := allowOf(cards)
	h.SetAllowed(allowed)
	for id, as := range addrs {
		if id == h.ID() {
			continue
		}
		h.h.Peerstore().ClearAddrs(id)
		h.h.Peerstore().AddAddrs(id, viaAddrs(as), peerstore.PermanentAddrTTL)
	}
	if err != nil {
		return fmt.Errorf("allow set: replicas left out: %w", err)
	}
	return nil
}

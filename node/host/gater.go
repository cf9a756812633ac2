package host

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater is the connection gater: it admits only the peers of the allow set,
// when dialling and once a connection is authenticated. It keeps no address
// rules: the peer ID, proven by the security handshake, is what counts.
type gater struct {
	mu      sync.RWMutex
	allowed map[peer.ID]string
	refused atomic.Uint64
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func newGater(allowed map[peer.ID]string) *gater {
	g := &gater{}
	g.set(allowed)
	return g
}

// set replaces the allow set with a copy of allowed and returns the peers
// it removed.
func (g *gater) set(allowed map[peer.ID]string) []peer.ID {
	next := make(map[peer.ID]string, len(allowed))
	for p, agency := range allowed {
		next[p] = agency
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var removed []peer.ID
	for p := range g.allowed {
		if _, ok := next[p]; !ok {
			removed = append(removed, p)
		}
	}
	g.allowed = next
	return removed
}

func (g *gater) agency(p peer.ID) (string, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	a, ok := g.allowed[p]
	return a, ok
}

func (g *gater) admit(p peer.ID) bool {
	_, ok := g.agency(p)
	if !ok {
		g.refused.Add(1)
	}
	return ok
}

// InterceptPeerDial refuses to dial a peer outside the allow set.
func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.admit(p) }

// InterceptAddrDial refuses to dial a peer outside the allow set (and, in
// a chaos build, an address that must be dialled through its proxy).
func (g *gater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	_, ok := g.agency(p)
	return ok && !directRefused(a)
}

// InterceptAccept lets any inbound connection reach the handshake: the peer
// is unknown until then.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses an authenticated peer outside the allow set, in
// either direction.
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.admit(p)
}

// InterceptUpgraded checks the allow set once more, in case it changed
// during the upgrade.
func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.admit(c.RemotePeer()), 0
}

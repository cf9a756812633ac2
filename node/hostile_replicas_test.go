package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/node/host"
)

// serveCard serves the target, on the hostile node's sync protocol, the
// card cb (signed and ok, no segments), and makes the target sync: the
// target's card check decides whether it pins it.
func (h *hostilePeer) serveCard(target *Node, cb []byte) error {
	h.t.Helper()
	restore := h.answerSync(func(m *wire.SyncRequest) []byte { return h.syncHead(m, cb, 0, h.key) })
	defer restore()
	ps := target.partnerSets
	pc := ps.partnerCopy(h.agency, "phone", reachOpen)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ps.syncCopy(ctx, h.agency, "phone", reachOpen, pc, 1)
}

// replicaFlood gives the hostile agency the most replicas a card may list
// (16: its own and 15 more libp2p hosts it runs), has the target pin that
// card through sync as it pins any newer card of a partner, then holds
// perReplica match streams open from every one of them at once while the
// honest partner asks. It reports what the honest partner got and how
// many streams the target held.
func (h *hostilePeer) replicaFlood(target *Node, perReplica int, honest func() (time.Duration, error)) outcomes {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pinned := target.cards.Pins()[h.agency]
	evil := *pinned
	evil.Replicas = slices.Clone(pinned.Replicas[:1])
	var addrs []string
	for _, a := range target.host.Addrs() {
		addrs = append(addrs, a.String())
	}
	hosts := []*host.Host{h.node.host}
	for len(evil.Replicas) < 16 {
		key := newKey(h.t)
		hh, err := host.New(ctx, host.Config{Key: key, Allowed: map[peer.ID]string{target.host.ID(): h.target}})
		if err != nil {
			h.t.Fatalf("host.New: %v", err)
		}
		defer hh.Close()
		if err := hh.SetAddrs(target.host.ID(), addrs); err != nil {
			h.t.Fatal(err)
		}
		id, err := host.PeerIDOf(key.Public().(ed25519.PublicKey))
		if err != nil {
			h.t.Fatal(err)
		}
		evil.Replicas = append(evil.Replicas, card.Replica{PeerID: id.String(), Addrs: []string{hh.Addrs()[0].String()}})
		hosts = append(hosts, hh)
	}
	evil.Sequence++
	if err := evil.Sign(h.key); err != nil {
		h.t.Fatal(err)
	}
	cb, err := evil.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.serveCard(target, cb); err != nil {
		h.t.Fatalf("the target refused a newer card of %s with 16 replicas: %v", h.agency, err)
	}
	if got := len(target.cards.Pins()[h.agency].Replicas); got != 16 {
		h.t.Fatalf("the target pinned %d replicas of %s; want 16", got, h.agency)
	}

	var (
		mu   sync.Mutex
		held []exchange.Stream
	)
	to := exchange.PeerID(target.host.ID().String())
	parallel(len(hosts)*perReplica, 32, func(i int) string {
		st, err := hosts[i%len(hosts)].Open(ctx, to, exchange.ProtoMatch)
		if err != nil {
			return "refused"
		}
		if _, err := st.Write([]byte{0x05}); err != nil {
			_ = st.Reset()
			return "reset"
		}
		mu.Lock()
		held = append(held, st)
		mu.Unlock()
		return "held"
	})
	// The host resets what is over the agency's limit.
	atTarget := target.host.Streams()
	for deadline := time.Now().Add(10 * time.Second); atTarget > host.DefaultAgencyStreams+hostileStreamSlack && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		atTarget = target.host.Streams()
	}
	o := outcomes{}
	for range 3 {
		if _, err := honest(); err != nil {
			h.t.Logf("honest query during the replica flood: %v", err)
			o["honest query failed"]++
		} else {
			o["honest query answered"]++
		}
	}
	for _, st := range held {
		_ = st.Reset()
	}
	h.t.Logf("replica flood: %d streams opened from %d replicas, %d open at the target", len(held), len(hosts), atTarget)
	if atTarget > host.DefaultAgencyStreams+hostileStreamSlack {
		o[fmt.Sprintf("target held %d streams of one agency", atTarget)]++
	}
	return o
}

// rawFlood has a replica of the hostile agency (a plain libp2p host, its
// key on a newer card of the agency that the target pins through sync)
// open n streams at the target without ever negotiating a protocol, and
// hold them, while the honest partner asks.
func (h *hostilePeer) rawFlood(target *Node, n int, honest func() (time.Duration, error)) outcomes {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	priv, err := crypto.UnmarshalEd25519PrivateKey(newKey(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	raw, err := libp2p.New(libp2p.Identity(priv), libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Security(noise.ID, noise.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableRelay(), libp2p.ForceReachabilityPublic(),
		libp2p.Ping(false), libp2p.DisableMetrics())
	if err != nil {
		h.t.Fatalf("libp2p.New: %v", err)
	}
	defer raw.Close()
	pinned := target.cards.Pins()[h.agency]
	evil := *pinned
	evil.Replicas = []card.Replica{pinned.Replicas[0], {PeerID: raw.ID().String(), Addrs: []string{raw.Addrs()[0].String()}}}
	evil.Sequence++
	if err := evil.Sign(h.key); err != nil {
		h.t.Fatal(err)
	}
	cb, err := evil.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.serveCard(target, cb); err != nil {
		h.t.Fatalf("the target refused a newer card of %s: %v", h.agency, err)
	}
	if err := raw.Connect(ctx, peer.AddrInfo{ID: target.host.ID(), Addrs: target.host.Addrs()}); err != nil {
		h.t.Fatalf("connect to the target: %v", err)
	}
	var held []network.Stream
	for range n {
		s, err := raw.Network().NewStream(ctx, target.host.ID())
		if err != nil {
			break
		}
		held = append(held, s)
	}
	// Let the target see them.
	for deadline := time.Now().Add(5 * time.Second); target.host.Streams() < min(len(held), 32) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	atTarget := target.host.Streams()
	o := outcomes{}
	for range 3 {
		if _, err := honest(); err != nil {
			h.t.Logf("honest query during the flood of streams that never negotiate: %v", err)
			o["honest query failed"]++
		} else {
			o["honest query answered"]++
		}
	}
	for _, s := range held {
		_ = s.Reset()
	}
	h.t.Logf("streams that never negotiate: %d opened, %d open at the target", len(held), atTarget)
	return o
}

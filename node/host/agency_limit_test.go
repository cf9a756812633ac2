package host

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/xborder/xborder/exchange"
)

// TestHostEnforcesAgencyStreamLimit opens more streams than an agency may
// have handled at once from two replicas of that agency: no more than the
// limit are served, whichever replica opens them, and a stream of another
// agency is served while the first is at its limit.
func TestHostEnforcesAgencyStreamLimit(t *testing.T) {
	noLeaks(t)
	const limit = 3
	kFR1, kFR2, kGB, kDE := newKey(t), newKey(t), newKey(t), newKey(t)
	allowed := map[peer.ID]string{peerOf(t, kFR1): "FR", peerOf(t, kFR2): "FR", peerOf(t, kGB): "GB", peerOf(t, kDE): "DE"}
	fr1 := startHost(t, Config{Key: kFR1, Allowed: allowed})
	fr2 := startHost(t, Config{Key: kFR2, Allowed: allowed})
	gb := startHost(t, Config{Key: kGB, Allowed: allowed})
	de := startHost(t, Config{Key: kDE, Allowed: allowed, AgencyStreams: limit})
	learn(t, fr1, de)
	learn(t, fr2, de)
	learn(t, gb, de)

	release := make(chan struct{})
	de.Handle(exchange.ProtoMatch, func(_ context.Context, _ exchange.Peer, st exchange.Stream) {
		_, _ = st.Write([]byte("k"))
		<-release
	})
	defer close(release)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var open []exchange.Stream
	defer func() {
		for _, st := range open {
			_ = st.Reset()
		}
	}()
	served := func(from *Host) bool {
		st, err := from.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch)
		if err != nil {
			return false
		}
		open = append(open, st)
		_, err = io.ReadFull(st, make([]byte, 1))
		return err == nil
	}
	n := 0
	for i := range 2 * limit {
		if served([]*Host{fr1, fr2}[i%2]) {
			n++
		}
	}
	if n != limit {
		t.Errorf("%d concurrent streams of FR's two replicas served; want %d", n, limit)
	}
	if !served(gb) {
		t.Error("GB's stream was not served while FR was at its limit")
	}
}

// TestHostStreamsThatNeverNegotiate: a pinned peer that opens many streams
// and never negotiates a protocol on them (they count as transient until
// it does) does not keep another partner's stream from being served.
func TestHostStreamsThatNeverNegotiate(t *testing.T) {
	noLeaks(t)
	kFR, kGB, kDE := newKey(t), newKey(t), newKey(t)
	allowed := map[peer.ID]string{peerOf(t, kFR): "FR", peerOf(t, kGB): "GB", peerOf(t, kDE): "DE"}
	gb := startHost(t, Config{Key: kGB, Allowed: allowed})
	de := startHost(t, Config{Key: kDE, Allowed: allowed})
	learn(t, gb, de)
	de.Handle(exchange.ProtoMatch, func(_ context.Context, _ exchange.Peer, st exchange.Stream) {
		_, _ = st.Write([]byte("k"))
	})

	priv, err := crypto.UnmarshalEd25519PrivateKey(kFR)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := libp2p.New(libp2p.Identity(priv), libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()), libp2p.NoListenAddrs,
		libp2p.Security(noise.ID, noise.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableRelay(), libp2p.ForceReachabilityPublic(),
		libp2p.Ping(false), libp2p.DisableMetrics())
	if err != nil {
		t.Fatalf("libp2p.New: %v", err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peer.AddrInfo{ID: de.ID(), Addrs: de.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
	for range 128 {
		s, err := raw.Network().NewStream(ctx, de.ID())
		if err != nil {
			break
		}
		defer s.Reset()
	}
	// The streams reach DE as they are opened; GB asks after them.
	eventually(t, "FR's streams at DE", func() bool { return de.Streams() >= 32 })
	st, err := gb.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch)
	if err != nil {
		t.Fatalf("GB opens a stream while FR holds its streams: %v", err)
	}
	defer st.Close()
	if _, err := io.ReadFull(st, make([]byte, 1)); err != nil {
		t.Errorf("GB's stream was not served while FR held %d streams that never negotiate: %v", de.Streams(), err)
	}
}

package host

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
)

// noLeaks fails the test if it leaves a goroutine behind. Call it first:
// cleanups run last-in first-out, so the check runs after every Close.
func noLeaks(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

func peerOf(t *testing.T, k ed25519.PrivateKey) peer.ID {
	t.Helper()
	id, err := PeerIDOf(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("PeerIDOf: %v", err)
	}
	return id
}

func startHost(t *testing.T, cfg Config) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// learn tells from where to dial to.
func learn(t *testing.T, from, to *Host) {
	t.Helper()
	var addrs []string
	for _, a := range to.Addrs() {
		addrs = append(addrs, a.String())
	}
	if err := from.SetAddrs(to.ID(), addrs); err != nil {
		t.Fatalf("SetAddrs: %v", err)
	}
}

// pair starts two hosts of agencies FR and DE that pin each other.
func pair(t *testing.T) (fr, de *Host) {
	t.Helper()
	kFR, kDE := newKey(t), newKey(t)
	allowed := map[peer.ID]string{peerOf(t, kFR): "FR", peerOf(t, kDE): "DE"}
	fr = startHost(t, Config{Key: kFR, Allowed: allowed})
	de = startHost(t, Config{Key: kDE, Allowed: allowed})
	learn(t, fr, de)
	learn(t, de, fr)
	return fr, de
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHostExchangesStream(t *testing.T) {
	noLeaks(t)
	fr, de := pair(t)

	type seen struct {
		from exchange.Peer
		dl   bool
	}
	got := make(chan seen, 1)
	de.Handle(exchange.ProtoMatch, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		_, hasDeadline := ctx.Deadline()
		got <- seen{from, hasDeadline}
		msg, err := io.ReadAll(io.LimitReader(st, 1<<10))
		if err != nil {
			_ = st.Reset()
			return
		}
		_, _ = st.Write(append([]byte("answer to "), msg...))
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var opener exchange.Opener = fr
	st, err := opener.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := st.Write([]byte("query")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	answer, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	_ = st.Close()
	if string(answer) != "answer to query" {
		t.Errorf("answer = %q; want %q", answer, "answer to query")
	}
	s := <-got
	want := exchange.Peer{ID: exchange.PeerID(fr.ID().String()), Agency: "FR"}
	if s.from != want {
		t.Errorf("handler saw peer %+v; want %+v", s.from, want)
	}
	if !s.dl {
		t.Error("handler context has no deadline")
	}
	if c := de.Connected(); len(c) != 1 || c[0] != want {
		t.Errorf("Connected() = %+v; want [%+v]", c, want)
	}

	// A protocol nobody handles fails to open or fails on first use.
	st, err = fr.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoSync)
	if err == nil {
		_, _ = st.Write([]byte("x"))
		_, err = st.Read(make([]byte, 1))
		_ = st.Reset()
	}
	if err == nil {
		t.Error("a stream on an unhandled protocol worked")
	}
}

func TestHostRefusesUnpinnedPeer(t *testing.T) {
	noLeaks(t)
	fr, de := pair(t)
	kX := newKey(t)
	// X pins FR, but FR does not pin X.
	x := startHost(t, Config{Key: kX, Allowed: map[peer.ID]string{fr.ID(): "FR"}})
	learn(t, x, fr)
	learn(t, fr, x)
	handled := make(chan exchange.Peer, 1)
	fr.Handle(exchange.ProtoMatch, func(_ context.Context, from exchange.Peer, _ exchange.Stream) { handled <- from })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Inbound: X dials FR; FR's gater refuses X once the handshake names it.
	before := fr.Refused()
	if st, err := x.Open(ctx, exchange.PeerID(fr.ID().String()), exchange.ProtoMatch); err == nil {
		_, _ = st.Write([]byte("x"))
		_, err = st.Read(make([]byte, 1))
		_ = st.Reset()
		if err == nil {
			t.Fatal("an unpinned peer exchanged data with FR")
		}
	}
	eventually(t, "FR's gater to count the refusal", func() bool { return fr.Refused() > before })
	if fr.h.Network().Connectedness(x.ID()) == network.Connected {
		t.Error("FR is connected to the unpinned peer")
	}

	// Outbound: FR refuses to open a stream to X, and its gater refuses to
	// dial X even below Open.
	if _, err := fr.Open(ctx, exchange.PeerID(x.ID().String()), exchange.ProtoMatch); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Open to an unpinned peer = %v; want ErrNotAllowed", err)
	}
	err := fr.h.Connect(ctx, peer.AddrInfo{ID: x.ID(), Addrs: x.Addrs()})
	if !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
		t.Errorf("Connect to an unpinned peer = %v; want swarm.ErrGaterDisallowedConnection", err)
	}
	select {
	case from := <-handled:
		t.Errorf("FR handled a stream from %+v", from)
	default:
	}
	if c := fr.Connected(); len(c) != 0 {
		t.Errorf("FR Connected() = %+v; want none", c)
	}
	_ = de
}

func TestHostResetsStreamOfPeerNoLongerAllowed(t *testing.T) {
	noLeaks(t)
	fr, de := pair(t)
	handled := make(chan struct{}, 1)
	de.Handle(exchange.ProtoMatch, func(context.Context, exchange.Peer, exchange.Stream) { handled <- struct{}{} })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fr.h.Connect(ctx, peer.AddrInfo{ID: de.ID()}); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	// Remove FR from DE's gater alone, leaving the connection up: the
	// stream handler is the last line and must reset the stream.
	de.gate.set(map[peer.ID]string{de.ID(): "DE"})
	st, err := fr.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch)
	if err == nil {
		_, _ = st.Write([]byte("x"))
		_, err = st.Read(make([]byte, 1))
		_ = st.Reset()
	}
	if err == nil || errors.Is(err, io.EOF) {
		t.Errorf("stream from a peer no longer allowed: err = %v; want a reset", err)
	}
	select {
	case <-handled:
		t.Error("the handler ran for a peer no longer allowed")
	default:
	}
}

func TestHostRemovingPinClosesConnection(t *testing.T) {
	noLeaks(t)
	fr, de := pair(t)
	readErr := make(chan error, 1)
	started := make(chan struct{})
	de.Handle(exchange.ProtoMatch, func(_ context.Context, _ exchange.Peer, st exchange.Stream) {
		close(started)
		_, err := io.ReadAll(st) // until the connection goes
		readErr <- err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := fr.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Reset()
	if _, err := st.Write([]byte("partial")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the handler did not start")
	}

	de.SetAllowed(map[peer.ID]string{de.ID(): "DE"})

	eventually(t, "the connection to close", func() bool {
		return fr.h.Network().Connectedness(de.ID()) != network.Connected &&
			de.h.Network().Connectedness(fr.ID()) != network.Connected
	})
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("the handler's stream ended cleanly; want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's stream stayed open")
	}
	if c := de.Connected(); len(c) != 0 {
		t.Errorf("Connected() = %+v; want none", c)
	}
	// FR still pins DE, but DE now refuses FR.
	if st, err := fr.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch); err == nil {
		_, _ = st.Write([]byte("x"))
		_, err = st.Read(make([]byte, 1))
		_ = st.Reset()
		if err == nil {
			t.Error("a removed partner exchanged data")
		}
	}
	if _, err := de.Open(ctx, exchange.PeerID(fr.ID().String()), exchange.ProtoMatch); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Open to a removed partner = %v; want ErrNotAllowed", err)
	}
}

func TestHostListensOnlyWhereTold(t *testing.T) {
	noLeaks(t)
	h := startHost(t, Config{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0"}})
	h.Handle(exchange.ProtoMatch, func(context.Context, exchange.Peer, exchange.Stream) {})

	if got := h.Addrs(); len(got) != 2 {
		t.Fatalf("Addrs() = %v; want two TCP loopback addresses", got)
	}
	for _, a := range append(h.Addrs(), h.h.Addrs()...) {
		ps := a.Protocols()
		if len(ps) != 2 || ps[1].Code != ma.P_TCP || !manet.IsIPLoopback(a) {
			t.Errorf("host address %s; want only TCP on loopback", a)
		}
	}
	sw, ok := h.h.Network().(*swarm.Swarm)
	if !ok {
		t.Fatalf("network is %T; want *swarm.Swarm", h.h.Network())
	}
	for _, s := range []string{
		"/ip4/127.0.0.1/udp/4001/quic-v1",
		"/ip4/127.0.0.1/udp/4001/quic-v1/webtransport",
		"/ip4/127.0.0.1/tcp/4001/ws",
		"/ip4/127.0.0.1/udp/4001/webrtc-direct",
		"/p2p-circuit",
	} {
		a := ma.StringCast(s)
		if tpt := sw.TransportForDialing(a); tpt != nil {
			t.Errorf("a transport dials %s: %T", s, tpt)
		}
		if tpt := sw.TransportForListening(a); tpt != nil {
			t.Errorf("a transport listens on %s: %T", s, tpt)
		}
	}
	// No UDP socket at all: no QUIC, WebRTC or mDNS behind our back.
	if n, ok := udpSockets(t); ok && n != 0 {
		t.Errorf("the process holds %d UDP sockets; want none", n)
	} else if !ok {
		t.Log("no /proc: UDP sockets not counted")
	}
	// Only identify and our own protocols: no relay, AutoNAT, hole
	// punching (dcutr), ping, DHT or mDNS.
	want := []string{exchange.ProtoMatch, identify.ID, identify.IDPush}
	slices.Sort(want)
	if got := h.Protocols(); !slices.Equal(got, want) {
		t.Errorf("Protocols() = %v; want %v", got, want)
	}
	for _, p := range h.Protocols() {
		for _, bad := range []string{"relay", "autonat", "dcutr", "kad", "ping", "mdns"} {
			if strings.Contains(p, bad) {
				t.Errorf("host answers %s", p)
			}
		}
	}
}

// udpSockets counts the UDP sockets this process holds, from /proc (Linux);
// ok is false where /proc is missing.
func udpSockets(t *testing.T) (n int, ok bool) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	mine := make(map[string]bool)
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if inode, found := strings.CutPrefix(target, "socket:["); err == nil && found {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	for _, table := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
			if f := strings.Fields(line); len(f) > 9 && mine[f[9]] {
				n++
			}
		}
	}
	t.Logf("%d sockets, %d of them UDP", len(mine), n)
	return n, true
}

func TestNewHostRefusesBadConfig(t *testing.T) {
	noLeaks(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{}},
		{"short key", Config{Key: make([]byte, 32)}},
		{"quic", Config{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}},
		{"websocket", Config{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/tcp/0/ws"}}},
		{"dns", Config{Key: newKey(t), Listen: []string{"/dns4/localhost/tcp/0"}}},
		{"garbage", Config{Key: newKey(t), Listen: []string{"127.0.0.1:4001"}}},
		{"unusable", Config{Key: newKey(t), Listen: []string{"/ip4/192.0.2.1/tcp/0"}}},
		{"one unusable of two", Config{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/192.0.2.1/tcp/0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(context.Background(), tt.cfg)
			if err == nil {
				_ = h.Close()
				t.Fatalf("New(%+v) succeeded", tt.cfg.Listen)
			}
			t.Logf("New: %v", err)
		})
	}
}

func TestHostEnforcesPeerStreamLimit(t *testing.T) {
	noLeaks(t)
	const limit = 3
	limits := rcmgr.PartialLimitConfig{
		PeerDefault: rcmgr.ResourceLimits{StreamsInbound: limit, Streams: 2 * limit},
	}.Build(DefaultLimits())
	kFR, kDE := newKey(t), newKey(t)
	allowed := map[peer.ID]string{peerOf(t, kFR): "FR", peerOf(t, kDE): "DE"}
	fr := startHost(t, Config{Key: kFR, Allowed: allowed})
	de := startHost(t, Config{Key: kDE, Allowed: allowed, Limits: &limits})
	learn(t, fr, de)

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
	served := 0
	for range 2 * limit {
		st, err := fr.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch)
		if err != nil {
			continue
		}
		open = append(open, st)
		if _, err := io.ReadFull(st, make([]byte, 1)); err == nil {
			served++
		}
	}
	t.Logf("%d of %d concurrent streams served under a limit of %d", served, 2*limit, limit)
	if served == 0 || served > limit {
		t.Errorf("%d concurrent inbound streams served; want 1 to %d", served, limit)
	}
}

func TestPeerIDOf(t *testing.T) {
	noLeaks(t)
	k := newKey(t)
	h := startHost(t, Config{Key: k})
	if id := peerOf(t, k); id != h.ID() {
		t.Errorf("PeerIDOf = %s; host ID = %s", id, h.ID())
	}
	if _, err := PeerIDOf(ed25519.PublicKey(bytes.Repeat([]byte{1}, 5))); err == nil {
		t.Error("PeerIDOf of a 5-byte key succeeded")
	}
}

func TestSetAddrs(t *testing.T) {
	noLeaks(t)
	h := startHost(t, Config{Key: newKey(t)})
	other := peerOf(t, newKey(t))
	third := peerOf(t, newKey(t))
	tests := []struct {
		addr string
		ok   bool
	}{
		{"/ip4/192.0.2.1/tcp/4001", true},
		{"/dns4/r1.example.fr/tcp/4001", true},
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + other.String(), true},
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + third.String(), false},
		{"192.0.2.1:4001", false},
	}
	for _, tt := range tests {
		err := h.SetAddrs(other, []string{tt.addr})
		if (err == nil) != tt.ok {
			t.Errorf("SetAddrs(%q) = %v; want ok %v", tt.addr, err, tt.ok)
		}
	}
}

// agencyCard returns a signed card of agency cc listing the hosts.
func agencyCard(t *testing.T, cc string, hosts ...*Host) *card.Card {
	t.Helper()
	c := &card.Card{
		Version:  card.Version,
		Agency:   cc,
		Name:     "Agency " + cc,
		Issued:   time.Now(),
		Expires:  time.Now().Add(24 * time.Hour),
		Sequence: 1,
	}
	for _, h := range hosts {
		r := card.Replica{PeerID: h.ID().String()}
		for _, a := range h.Addrs() {
			r.Addrs = append(r.Addrs, a.String())
		}
		c.Replicas = append(c.Replicas, r)
	}
	if err := c.Sign(newKey(t)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return c
}

func TestHostSetCards(t *testing.T) {
	noLeaks(t)
	fr := startHost(t, Config{Key: newKey(t)})
	de := startHost(t, Config{Key: newKey(t)})
	frCard, deCard := agencyCard(t, "FR", fr), agencyCard(t, "DE", de)
	if err := fr.SetCards(frCard, deCard); err != nil {
		t.Fatalf("FR SetCards: %v", err)
	}
	if err := de.SetCards(deCard, frCard); err != nil {
		t.Fatalf("DE SetCards: %v", err)
	}
	from := make(chan exchange.Peer, 1)
	de.Handle(exchange.ProtoSync, func(_ context.Context, p exchange.Peer, st exchange.Stream) {
		from <- p
		_, _ = st.Write([]byte("ok"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := fr.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoSync)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got, err := io.ReadAll(st)
	_ = st.Close()
	if err != nil || string(got) != "ok" {
		t.Fatalf("ReadAll = %q, %v; want \"ok\"", got, err)
	}
	if p := <-from; p.Agency != "FR" || p.ID != exchange.PeerID(fr.ID().String()) {
		t.Errorf("DE saw %+v; want FR's replica", p)
	}

	// A replica whose peer ID does not decode is left out, and named in the
	// error; the rest of the allow set stands: DE is still FR's partner.
	bad := agencyCard(t, "PL", fr)
	bad.Replicas[0].PeerID = "not-a-peer-id"
	if err := fr.SetCards(frCard, deCard, bad); !errors.Is(err, ErrBadReplica) {
		t.Errorf("SetCards with a bad peer ID: %v; want ErrBadReplica", err)
	}
	if c := fr.Connected(); len(c) != 1 || c[0].Agency != "DE" {
		t.Errorf("Connected() = %+v after SetCards with a bad card; want DE", c)
	}
	// A peer two partners claim is admitted for neither; a partner claiming
	// one of the agency's own replicas takes nothing from it.
	claimed := agencyCard(t, "PL", de, fr) // DE's replica and FR's own on PL's card
	if err := fr.SetCards(frCard, deCard, claimed); !errors.Is(err, ErrPeerClaimed) {
		t.Errorf("SetCards with a replica of two agencies: %v; want ErrPeerClaimed", err)
	}
	if a, ok := fr.Allows(de.ID()); ok {
		t.Errorf("Allows(DE's replica, also on PL's card) = %q; want neither", a)
	}
	if a, ok := fr.Allows(fr.ID()); !ok || a != "FR" {
		t.Errorf("Allows(own replica, also on PL's card) = %q, %v; want FR", a, ok)
	}
}

func TestHostCloseEndsHandlers(t *testing.T) {
	noLeaks(t)
	fr, de := pair(t)
	started := make(chan struct{})
	ended := make(chan error, 1)
	de.Handle(exchange.ProtoMatch, func(ctx context.Context, _ exchange.Peer, _ exchange.Stream) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := fr.Open(ctx, exchange.PeerID(de.ID().String()), exchange.ProtoMatch)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Reset()
	if _, err := st.Write([]byte("x")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the handler did not start")
	}
	if err := de.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waited for the handler, so its result is already there.
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler ctx ended with %v; want context.Canceled", err)
		}
	default:
		t.Fatal("Close returned before the handler ended")
	}
	if _, err := de.Open(ctx, exchange.PeerID(fr.ID().String()), exchange.ProtoMatch); !errors.Is(err, ErrHostClosed) {
		t.Errorf("Open after Close = %v; want ErrHostClosed", err)
	}
	if err := de.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

package host

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/gologshim"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/xborder/xborder/exchange"
)

// Defaults of Config.
const (
	DefaultListen        = "/ip4/127.0.0.1/tcp/0"
	DefaultStreamTimeout = 2 * time.Minute
	DefaultDialTimeout   = 10 * time.Second
	// DefaultAgencyStreams is how many streams of one agency, all its
	// replicas together, the host hands to handlers at once, so that an
	// agency listing 16 replicas on its card cannot take 16 times the
	// share of one (the resource manager limits each peer to 32 inbound
	// streams).
	DefaultAgencyStreams = 64
)

// Errors of the libp2p host.
var (
	// ErrNotAllowed: the peer is neither a pinned partner's replica nor one
	// of the agency's own replicas. Pin the partner's card first.
	ErrNotAllowed = errors.New("peer not allowed")
	// ErrUnreachable: no connection or stream to an allowed peer could be
	// opened before the deadline. The partner is down or its addresses on
	// the card are stale: report the partner as unavailable (exit code 4).
	ErrUnreachable = errors.New("peer unreachable")
	// ErrHostClosed: the host was closed.
	ErrHostClosed = errors.New("host closed")
)

// Config configures New. The zero value of each field but Key is a
// working default for one machine.
type Config struct {
	// Key is the replica's libp2p identity. Required; its peer ID is what
	// the agency card lists (see PeerIDOf).
	Key ed25519.PrivateKey
	// Listen lists TCP multiaddrs to listen on (/ip4/…/tcp/N or
	// /ip6/…/tcp/N; port 0 picks a free port). Empty: DefaultListen, a free
	// port on 127.0.0.1. Anything else (QUIC, websocket, DNS) is refused.
	Listen []string
	// Allowed is the first allow set: peer ID to agency code, for the
	// agency's own replicas and every pinned partner replica. Empty: no
	// peer is admitted until SetAllowed.
	Allowed map[peer.ID]string
	// StreamTimeout is the deadline of every stream handed to a handler and
	// of every stream Open returns (a protocol may move it). Zero:
	// DefaultStreamTimeout.
	StreamTimeout time.Duration
	// DialTimeout bounds opening a connection. Zero: DefaultDialTimeout.
	DialTimeout time.Duration
	// AgencyStreams is how many inbound streams of one agency (every
	// replica its card lists, together) are handed to handlers at once;
	// the agency's further streams are reset unread until one ends. Zero:
	// DefaultAgencyStreams.
	AgencyStreams int
	// Limits are the resource manager's limits. Nil: DefaultLimits().
	Limits *rcmgr.ConcreteLimitConfig
	// Logger receives the host's own logs (libp2p's internal logs go where
	// SetLibp2pLogHandler sends them). Nil: discard.
	Logger *slog.Logger
}

// Host is a replica's libp2p host: TCP only, no discovery, and a connection
// gater that admits only the peers of the allow set. It adapts libp2p to
// exchange's seams: Open satisfies exchange.Opener, and Handle hands the
// streams of admitted peers to exchange's handlers.
//
// Its goroutines, and those of libp2p, end when Close returns.
type Host struct {
	h             p2phost.Host
	gate          *gater
	log           *slog.Logger
	streamTimeout time.Duration
	notifee       *network.NotifyBundle

	mu      sync.Mutex
	closed  bool
	nextID  uint64
	cancels map[uint64]context.CancelFunc // of running handlers
	wg      sync.WaitGroup                // running handlers and connection closers
	// handling counts the running handlers per agency, at most
	// agencyStreams each.
	handling      map[string]int
	agencyStreams int
	agencyRefused uint64 // streams reset over an agency's limit
}

var _ exchange.Opener = (*Host)(nil)

// New starts a libp2p host listening on cfg.Listen.
//
// The host runs: TCP (no reuseport), Noise, yamux, identify without
// address discovery from observed addresses, the connection gater, and the
// resource manager with cfg.Limits. It does not run: QUIC, websocket,
// WebRTC, mDNS, a DHT, relays (client or service), hole punching, AutoNAT
// (client or service; reachability is fixed to public), NAT port mapping,
// ping, a connection manager that trims connections, or Prometheus metrics.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("start libp2p host: identity key is %d bytes; want an Ed25519 private key of %d", len(cfg.Key), ed25519.PrivateKeySize)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: identity key: %w", err)
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{DefaultListen}
	}
	addrs := make([]ma.Multiaddr, 0, len(listen))
	for _, s := range listen {
		a, err := tcpListenAddr(s)
		if err != nil {
			return nil, fmt.Errorf("start libp2p host: %w", err)
		}
		addrs = append(addrs, a)
	}
	limits := DefaultLimits()
	if cfg.Limits != nil {
		limits = *cfg.Limits
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: resource manager: %w", err)
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	hst := &Host{
		gate:          newGater(cfg.Allowed),
		log:           cfg.Logger,
		streamTimeout: cfg.StreamTimeout,
		cancels:       make(map[uint64]context.CancelFunc),
		handling:      make(map[string]int),
		agencyStreams: cfg.AgencyStreams,
	}
	if hst.agencyStreams <= 0 {
		hst.agencyStreams = DefaultAgencyStreams
	}
	if hst.log == nil {
		hst.log = slog.New(slog.DiscardHandler)
	}
	hst.log = hst.log.With("component", "p2p")
	if hst.streamTimeout <= 0 {
		hst.streamTimeout = DefaultStreamTimeout
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.NoListenAddrs, // listened on below, so that a failure closes all
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(hst.gate),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPublic(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.Ping(false),
		libp2p.DisableMetrics(),
		libp2p.WithDialTimeout(dialTimeout),
	)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	hst.h = h
	// libp2p.New leaves goroutines behind when it cannot listen, so the host
	// starts without listening and listens here, where h.Close cleans up.
	// Listen succeeds when any one address works: insist on all.
	if err := h.Network().Listen(addrs...); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	if got := h.Network().ListenAddresses(); len(got) != len(addrs) {
		_ = h.Close()
		return nil, fmt.Errorf("start libp2p host: listening on %d of %d addresses %v", len(got), len(addrs), listen)
	}
	// Close connections that raced past the gater while SetAllowed removed
	// their peer.
	hst.notifee = &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if _, ok := hst.gate.agency(c.RemotePeer()); !ok {
			hst.goClose(c)
		}
	}}
	h.Network().Notify(hst.notifee)
	hst.log.Info("libp2p host started", "peer", h.ID().String(), "addrs", fmt.Sprint(h.Network().ListenAddresses()))
	return hst, nil
}

// tcpListenAddr parses a listen address and refuses anything but
// /ip4|ip6/ADDR/tcp/PORT.
func tcpListenAddr(s string) (ma.Multiaddr, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", s, err)
	}
	ps := a.Protocols()
	if len(ps) != 2 || (ps[0].Code != ma.P_IP4 && ps[0].Code != ma.P_IP6) || ps[1].Code != ma.P_TCP {
		return nil, fmt.Errorf("listen address %q: want /ip4/ADDR/tcp/PORT or /ip6/ADDR/tcp/PORT", s)
	}
	return a, nil
}

// PeerIDOf returns the libp2p peer ID of an Ed25519 public key, as agency
// cards list it.
func PeerIDOf(pub ed25519.PublicKey) (peer.ID, error) {
	k, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("peer ID of key: %w", err)
	}
	id, err := peer.IDFromPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("peer ID of key: %w", err)
	}
	return id, nil
}

// SetLibp2pLogHandler sends libp2p's internal logs to handler. It is
// process-wide and takes effect only if called before libp2p logs anything:
// call it once at start, before the first New.
func SetLibp2pLogHandler(handler slog.Handler) {
	gologshim.SetDefaultHandler(handler)
}

// ID returns the host's peer ID.
func (h *Host) ID() peer.ID { return h.h.ID() }

// Addrs returns the addresses the host listens on, with the ports chosen.
func (h *Host) Addrs() []ma.Multiaddr { return h.h.Network().ListenAddresses() }

// Protocols returns the protocols the host answers, sorted.
func (h *Host) Protocols() []string {
	var ps []string
	for _, p := range h.h.Mux().Protocols() {
		ps = append(ps, string(p))
	}
	slices.Sort(ps)
	return ps
}

// SetAllowed replaces the allow set (peer ID to agency code) and closes
// every connection to a peer no longer in it. Streams already handed to a
// handler by such a peer are reset with their connection.
func (h *Host) SetAllowed(allowed map[peer.ID]string) {
	removed := h.gate.set(allowed)
	for _, p := range removed {
		h.h.Peerstore().ClearAddrs(p)
		h.h.Peerstore().RemovePeer(p)
	}
	for _, p := range h.h.Network().Peers() {
		if _, ok := h.gate.agency(p); !ok {
			if err := h.h.Network().ClosePeer(p); err != nil {
				h.log.Warn("close connection of removed peer", "peer", p.String(), "err", err)
			}
		}
	}
	h.log.Info("allow set updated", "peers", len(allowed), "removed", len(removed))
}

// Allows reports whether the allow set admits peer id, and for which
// agency.
func (h *Host) Allows(id peer.ID) (agency string, ok bool) { return h.gate.agency(id) }

// SetAddrs records where an allowed peer listens, from the multiaddrs of its
// replica on the agency card, replacing what was known. An address may end
// in /p2p/ID only with the peer's own ID.
func (h *Host) SetAddrs(id peer.ID, addrs []string) error {
	parsed, err := parseAddrs(id, addrs)
	if err != nil {
		return err
	}
	h.h.Peerstore().ClearAddrs(id)
	h.h.Peerstore().AddAddrs(id, parsed, peerstore.PermanentAddrTTL)
	return nil
}

// Connected returns the allowed peers the host has a connection to, sorted
// by ID: the "connected partners" of the metrics.
func (h *Host) Connected() []exchange.Peer {
	var out []exchange.Peer
	for _, p := range h.h.Network().Peers() {
		if agency, ok := h.gate.agency(p); ok {
			out = append(out, exchange.Peer{ID: exchange.PeerID(p.String()), Agency: agency})
		}
	}
	slices.SortFunc(out, func(a, b exchange.Peer) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// Streams returns how many streams are open on the host's connections,
// inbound and outbound: what a test or a gauge watches for streams that are
// never closed.
func (h *Host) Streams() int {
	n := 0
	for _, c := range h.h.Network().Conns() {
		n += len(c.GetStreams())
	}
	return n
}

// Refused returns how many connections the gater has refused since start.
func (h *Host) Refused() uint64 { return h.gate.refused.Load() }

// Open opens a stream to an allowed peer on proto, dialling it if needed.
// The stream's deadline is the earlier of ctx's deadline and now plus the
// stream timeout. Open satisfies exchange.Opener.
func (h *Host) Open(ctx context.Context, id exchange.PeerID, proto string) (exchange.Stream, error) {
	p, err := peer.Decode(string(id))
	if err != nil {
		return nil, fmt.Errorf("open %s to %s: %w", proto, id, err)
	}
	if _, ok := h.gate.agency(p); !ok {
		return nil, fmt.Errorf("open %s to %s: %w", proto, id, ErrNotAllowed)
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("open %s to %s: %w", proto, id, ErrHostClosed)
	}
	deadline := time.Now().Add(h.streamTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	s, err := h.h.NewStream(ctx, p, protocol.ID(proto))
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() == context.Canceled {
			return nil, fmt.Errorf("open %s to %s: %w", proto, id, err)
		}
		return nil, fmt.Errorf("open %s to %s: %w: %w", proto, id, ErrUnreachable, err)
	}
	if err := s.SetDeadline(deadline); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("open %s to %s: set deadline: %w", proto, id, err)
	}
	return s, nil
}

// Handle hands every stream on proto from an allowed peer to fn, with the
// peer's agency code and a deadline of now plus the stream timeout on both
// the stream and ctx. Streams from any other peer are reset unread. fn runs
// on its own goroutine per stream; the stream is closed when fn returns.
// Close cancels ctx and waits for fn to return.
func (h *Host) Handle(proto string, fn func(ctx context.Context, from exchange.Peer, st exchange.Stream)) {
	h.h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		remote := s.Conn().RemotePeer()
		agency, ok := h.gate.agency(remote)
		if !ok {
			h.log.Warn("stream from a peer not allowed reset", "peer", remote.String(), "proto", proto)
			_ = s.Reset()
			return
		}
		deadline := time.Now().Add(h.streamTimeout)
		if err := s.SetDeadline(deadline); err != nil {
			_ = s.Reset()
			return
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		id, ok := h.track(cancel, agency)
		if !ok {
			_ = s.Reset()
			return
		}
		defer h.untrack(id, agency)
		fn(ctx, exchange.Peer{ID: exchange.PeerID(remote.String()), Agency: agency}, s)
		_ = s.Close()
	})
}

// track registers a running handler of a stream of agency; it fails once
// Close has begun, or when the agency has agencyStreams handlers running.
func (h *Host) track(cancel context.CancelFunc, agency string) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, false
	}
	if h.handling[agency] >= h.agencyStreams {
		h.agencyRefused++
		if h.agencyRefused&(h.agencyRefused-1) == 0 {
			// Logged at the 1st, 2nd, 4th, 8th ... refusal: a flood logs
			// a few lines.
			h.log.Warn("stream reset: the agency has as many streams handled as it may", "partner", agency,
				"limit", h.agencyStreams, "refused", h.agencyRefused)
		}
		return 0, false
	}
	h.handling[agency]++
	h.nextID++
	h.cancels[h.nextID] = cancel
	h.wg.Add(1)
	return h.nextID, true
}

func (h *Host) untrack(id uint64, agency string) {
	h.mu.Lock()
	delete(h.cancels, id)
	if h.handling[agency]--; h.handling[agency] <= 0 {
		delete(h.handling, agency)
	}
	h.mu.Unlock()
	h.wg.Done()
}

// goClose closes c on a tracked goroutine (a notifee may not block).
func (h *Host) goClose(c network.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = c.Close()
	}()
}

// Close cancels running handlers, closes every connection and listener,
// and returns when the host's goroutines and libp2p's have ended.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for _, cancel := range h.cancels {
		cancel()
	}
	h.mu.Unlock()
	h.h.Network().StopNotify(h.notifee)
	err := h.h.Close()
	h.wg.Wait()
	if err != nil {
		return fmt.Errorf("close libp2p host: %w", err)
	}
	return nil
}

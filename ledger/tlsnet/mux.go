package tlsnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Defaults for the zero values of [Config].
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	// maxPending caps the accepted connections still in their handshake;
	// more are closed at once, so a flood cannot pile up goroutines.
	maxPending = 256
)

var (
	// ErrUnknownChannel is returned by [Layer.Dial] when the peer has no
	// open [Layer] of that channel name: it runs a different version, or
	// has not started (or has closed) that Raft group. Retry later.
	ErrUnknownChannel = errors.New("peer does not serve channel")
	// ErrNotMux is returned by [PeerID] for a connection that did not come
	// from a [Layer].
	ErrNotMux = errors.New("connection is not from a tlsnet layer")
)

// Config configures a [Mux]. Certificate and Roots are required.
type Config struct {
	// Certificate is this replica's certificate chain and private key, as
	// made by [CA.Issue] (load it with tls.X509KeyPair). It is presented
	// both when accepting and when dialling. Its URI SAN names the agency
	// whose replicas are accepted as peers.
	Certificate tls.Certificate
	// Roots holds the agency CA certificate ([CA.Pool]); a peer must
	// present a certificate that chains to it.
	Roots *x509.CertPool
	// Advertise is the address peers dial to reach this replica, returned
	// by [Layer.Addr] (Raft puts it in its configuration). Zero means the
	// listener's own address, which is right unless it listens on a
	// wildcard address or behind a port forward.
	Advertise string
	// HandshakeTimeout bounds the TLS handshake and channel header of an
	// accepted connection, and how long it waits for [Layer.Accept]. Zero
	// means [DefaultHandshakeTimeout].
	HandshakeTimeout time.Duration
	// DialTimeout bounds [Layer.Dial] (TCP connect, handshake and header)
	// when the caller passes no timeout. Zero means [DefaultDialTimeout].
	DialTimeout time.Duration
	// Logger receives connection events (peer replica IDs, addresses and
	// errors, never key material). Nil discards them.
	Logger *slog.Logger
}

// Mux is a mutual-TLS listener whose connections are split by channel name
// among its [Layer]s. It is safe for concurrent use. Its goroutines (one
// accept loop and one per connection in handshake) end when Close returns.
type Mux struct {
	ln      net.Listener
	addr    net.Addr
	agency  string
	id      string
	roots   *x509.CertPool
	hsTime  time.Duration
	dialTo  time.Duration
	log     *slog.Logger
	server  *tls.Config
	client  *tls.Config
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	closed  bool
	layers  map[string]*Layer
	pending map[net.Conn]struct{}
}

// Listen listens on the TCP address addr (such as "127.0.0.1:0") and
// serves TLS 1.3 with mutual authentication: only replicas whose
// certificates chain to cfg.Roots and name the same agency as
// cfg.Certificate get through. Host names are not checked, so replicas may
// dial each other by IP address.
func Listen(addr string, cfg Config) (*Mux, error) {
	if len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil {
		return nil, errors.New("listen: config has no certificate")
	}
	if cfg.Roots == nil {
		return nil, errors.New("listen: config has no roots")
	}
	leaf := cfg.Certificate.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Certificate.Certificate[0]); err != nil {
			return nil, fmt.Errorf("listen: own certificate: %w", err)
		}
	}
	agency, id, err := ReplicaName(leaf)
	if err != nil {
		return nil, fmt.Errorf("listen: own certificate: %w", err)
	}
	m := &Mux{
		agency:  agency,
		id:      id,
		roots:   cfg.Roots,
		hsTime:  orDefault(cfg.HandshakeTimeout, DefaultHandshakeTimeout),
		dialTo:  orDefault(cfg.DialTimeout, DefaultDialTimeout),
		log:     cfg.Logger,
		done:    make(chan struct{}),
		layers:  make(map[string]*Layer),
		pending: make(map[net.Conn]struct{}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "tlsnet", "replica", id)
	m.server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cfg.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    cfg.Roots,
		// Every connection makes a full handshake with both certificates.
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := m.verifyPeer(cs, x509.ExtKeyUsageClientAuth)
			return err
		},
	}
	m.client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cfg.Certificate},
		// Host names are not part of a replica's identity: the chain to
		// the agency CA and the agency in the URI SAN are, and
		// VerifyConnection checks both on every handshake.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := m.verifyPeer(cs, x509.ExtKeyUsageServerAuth)
			return err
		},
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	m.ln = ln
	m.addr = ln.Addr()
	if cfg.Advertise != "" {
		m.addr = advertiseAddr(cfg.Advertise)
	}
	m.wg.Add(1)
	go m.acceptLoop()
	m.log.Info("listening", "addr", ln.Addr().String())
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// Addr returns the address peers dial: Config.Advertise, or the listener's
// address.
func (m *Mux) Addr() net.Addr { return m.addr }

// ReplicaID returns the replica ID named by this replica's own certificate.
func (m *Mux) ReplicaID() string { return m.id }

// Agency returns the agency code named by this replica's own certificate.
func (m *Mux) Agency() string { return m.agency }

// Layer returns the layer of the channel name (such as "audit" or
// "audit/fwd"), creating it on first use; a layer that was closed is
// replaced by a fresh one. Connections for a name with no open layer are
// refused. After Close it returns a closed layer. Layer panics if name is
// not 1 to 64 bytes of [a-z0-9/._-]: channel names are constants of the
// program.
func (m *Mux) Layer(name string) *Layer {
	if !validChannel(name) {
		panic(fmt.Sprintf("tlsnet: bad channel name %q", name))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.layers[name]; ok {
		return l
	}
	l := &Layer{
		m:     m,
		name:  name,
		ch:    make(chan *conn),
		done:  make(chan struct{}),
		conns: make(map[*conn]struct{}),
	}
	if m.closed {
		l.closed = true
		close(l.done)
		return l
	}
	m.layers[name] = l
	return l
}

// Close stops listening, closes every layer and every connection, and
// waits for the Mux's goroutines to end. Peers see their connections
// drop. It is safe to call more than once.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.closed = true
	close(m.done)
	layers := make([]*Layer, 0, len(m.layers))
	for _, l := range m.layers {
		layers = append(layers, l)
	}
	pending := make([]net.Conn, 0, len(m.pending))
	for c := range m.pending {
		pending = append(pending, c)
	}
	m.mu.Unlock()

	err := m.ln.Close()
	for _, c := range pending {
		_ = c.Close()
	}
	for _, l := range layers {
		_ = l.Close()
	}
	m.wg.Wait()
	m.log.Info("closed")
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close mux: %w", err)
	}
	return nil
}

// track registers a connection in handshake so Close can interrupt it; it
// reports false (and closes c) when the Mux is closed or too busy.
func (m *Mux) track(c net.Conn, accepted bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || (accepted && len(m.pending) >= maxPending) {
		_ = c.Close()
		return false
	}
	m.pending[c] = struct{}{}
	if accepted {
		m.wg.Add(1)
	}
	return true
}

func (m *Mux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		raw, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			// Out of file descriptors and the like: back off and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("accept failed", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-m.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		if !m.track(raw, true) {
			select {
			case <-m.done:
				return
			default:
			}
			m.log.Warn("connection refused: too many in handshake", "remote", raw.RemoteAddr().String())
			continue
		}
		go m.serve(raw)
	}
}

// serve runs the handshake and channel header of one accepted connection
// within the handshake timeout and hands it to its layer.
func (m *Mux) serve(raw net.Conn) {
	defer m.wg.Done()
	defer m.untrack(raw)
	remote := raw.RemoteAddr().String()
	_ = raw.SetDeadline(time.Now().Add(m.hsTime))
	tc := tls.Server(raw, m.server)
	if err := tc.Handshake(); err != nil {
		_ = raw.Close()
		m.logRefused("handshake failed", remote, err)
		return
	}
	peer, err := peerName(tc.ConnectionState())
	if err != nil {
		_ = raw.Close()
		m.logRefused("peer refused", remote, err)
		return
	}
	name, err := readHeader(tc)
	if err != nil {
		_ = raw.Close()
		m.logRefused("bad channel header", remote, err, "peer", peer)
		return
	}
	l := m.open(name)
	if l == nil {
		m.log.Warn("connection refused: unknown channel", "remote", remote, "peer", peer, "channel", name)
		_, _ = tc.Write([]byte{statusUnknown})
		_ = tc.Close()
		return
	}
	if _, err := tc.Write([]byte{statusOK}); err != nil {
		_ = raw.Close()
		m.logRefused("write channel status", remote, err, "peer", peer)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	c := &conn{Conn: tc, raw: raw, peer: peer, layer: l}
	if !l.add(c) {
		_ = tc.Close()
		return
	}
	t := time.NewTimer(m.hsTime)
	defer t.Stop()
	select {
	case l.ch <- c:
		m.log.Debug("accepted", "remote", remote, "peer", peer, "channel", name)
	case <-l.done:
		c.abort()
	case <-t.C:
		_ = c.Close()
		m.log.Warn("connection dropped: layer not accepting", "remote", remote, "peer", peer, "channel", name)
	}
}

func (m *Mux) logRefused(msg, remote string, err error, args ...any) {
	select {
	case <-m.done:
		return // closing interrupted it: not worth a warning
	default:
	}
	m.log.Warn("connection refused: "+msg, append([]any{"remote", remote, "err", err}, args...)...)
}

// open returns the open layer of the channel name, or nil.
func (m *Mux) open(name string) *Layer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.layers[name]
}

// verifyPeer checks that the peer's certificate chains to the agency CA,
// is valid now for usage, and names a replica of our agency; it returns the
// replica ID.
func (m *Mux) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("verify peer: no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}); err != nil {
		return "", fmt.Errorf("verify peer: %w", err)
	}
	agency, id, err := ReplicaName(leaf)
	if err != nil {
		return "", fmt.Errorf("verify peer: %w", err)
	}
	if agency != m.agency {
		return "", fmt.Errorf("verify peer: replica %s of agency %s, want agency %s", id, agency, m.agency)
	}
	return id, nil
}

// peerName returns the replica ID of a peer whose certificate
// VerifyConnection has checked in the handshake.
func peerName(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("peer name: no certificate")
	}
	_, id, err := ReplicaName(cs.PeerCertificates[0])
	if err != nil {
		return "", fmt.Errorf("peer name: %w", err)
	}
	return id, nil
}

// Layer is one channel of a [Mux]: a [raft.StreamLayer] whose Accept
// returns only the connections dialled to its channel name, and whose Dial
// opens such connections to other replicas' muxes. It is safe for
// concurrent use.
type Layer struct {
	m    *Mux
	name string
	ch   chan *conn
	done chan struct{}

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
}

var _ raft.StreamLayer = (*Layer)(nil)

// Name returns the channel name.
func (l *Layer) Name() string { return l.name }

// Accept waits for the next connection of the channel. The connection is
// authenticated: [PeerID] tells which replica it comes from. After Close
// (of the layer or its Mux) it returns an error wrapping net.ErrClosed.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("accept on channel %s: %w", l.name, net.ErrClosed)
	}
}

// Addr returns the address peers dial to reach this replica.
func (l *Layer) Addr() net.Addr { return l.m.addr }

// Close stops the layer: Accept returns an error, new connections for the
// channel are refused, and every connection accepted or dialled through
// the layer is closed. The Mux and its other layers keep running; a later
// [Mux.Layer] call with the same name opens the channel again.
func (l *Layer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()

	l.m.mu.Lock()
	if l.m.layers[l.name] == l {
		delete(l.m.layers, l.name)
	}
	l.m.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
	return nil
}

func (l *Layer) add(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Layer) remove(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Dial connects to the Mux at address and opens the layer's channel there,
// within timeout (or Config.DialTimeout when timeout is zero). It fails
// when the peer's certificate does not chain to the agency CA or names
// another agency, when the peer refuses ours, and with [ErrUnknownChannel]
// when the peer has no open layer of this name.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.DialContext(context.Background(), string(address), timeout)
}

// DialContext is Dial with a context that can cancel the attempt.
func (l *Layer) DialContext(ctx context.Context, address string, timeout time.Duration) (net.Conn, error) {
	m := l.m
	select {
	case <-l.done:
		return nil, fmt.Errorf("dial %s on channel %s: %w", address, l.name, net.ErrClosed)
	default:
	}
	if timeout <= 0 {
		timeout = m.dialTo
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("dial %s on channel %s: %w", address, l.name, err)
	}
	if !m.track(raw, false) {
		return nil, fmt.Errorf("dial %s on channel %s: %w", address, l.name, net.ErrClosed)
	}
	defer m.untrack(raw)
	c, err := l.handshake(ctx, raw)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("dial %s on channel %s: %w", address, l.name, err)
	}
	if !l.add(c) {
		_ = c.Conn.Close()
		return nil, fmt.Errorf("dial %s on channel %s: %w", address, l.name, net.ErrClosed)
	}
	l.m.log.Debug("dialled", "remote", address, "peer", c.peer, "channel", l.name)
	return c, nil
}

func (l *Layer) handshake(ctx context.Context, raw net.Conn) (*conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tc := tls.Client(raw, l.m.client)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	peer, err := peerName(tc.ConnectionState())
	if err != nil {
		return nil, err
	}
	hdr, err := appendHeader(nil, l.name)
	if err != nil {
		return nil, err
	}
	if _, err := tc.Write(hdr); err != nil {
		return nil, fmt.Errorf("write channel header: %w", err)
	}
	var st [1]byte
	if _, err := io.ReadFull(tc, st[:]); err != nil {
		// In TLS 1.3 a peer that refuses our certificate says so here.
		return nil, fmt.Errorf("read channel status: %w", err)
	}
	switch st[0] {
	case statusOK:
	case statusUnknown:
		return nil, ErrUnknownChannel
	default:
		return nil, fmt.Errorf("read channel status: %w: status %d", errBadHeader, st[0])
	}
	if !stop() {
		return nil, ctx.Err()
	}
	_ = raw.SetDeadline(time.Time{})
	return &conn{Conn: tc, raw: raw, peer: peer, layer: l}, nil
}

// conn is a connection of a layer: TLS plus the peer's verified replica ID.
type conn struct {
	*tls.Conn
	raw   net.Conn
	peer  string
	layer *Layer
	once  sync.Once
}

// Close closes the connection and forgets it in its layer.
func (c *conn) Close() error {
	c.once.Do(func() { c.layer.remove(c) })
	return c.Conn.Close()
}

// abort closes the connection without a TLS close_notify, which could
// block for seconds on a peer that has stopped reading.
func (c *conn) abort() {
	c.once.Do(func() { c.layer.remove(c) })
	_ = c.raw.Close()
}

// PeerID returns the replica ID of the peer of a connection returned by
// [Layer.Accept] or [Layer.Dial], as its certificate names it; the
// certificate was verified against the agency CA in the handshake. It
// returns [ErrNotMux] for other connections.
func PeerID(c net.Conn) (string, error) {
	tc, ok := c.(*conn)
	if !ok {
		return "", ErrNotMux
	}
	return tc.peer, nil
}

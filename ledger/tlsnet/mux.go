package tlsnet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
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
	// ErrRefused is returned by [Layer.Dial] when the peer authenticated
	// our certificate but its layer's admission check refused us (see
	// [Layer.SetAdmit]): this replica was removed from that channel's
	// group and revoked. It will not be admitted again under its ID.
	ErrRefused = errors.New("peer refused this replica on the channel")
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
	if err := l.admit(peer); err != nil {
		m.log.Warn("connection refused: peer not admitted on channel", "remote", remote, "peer", peer, "channel", name, "err", err)
		_, _ = tc.Write([]byte{statusRefused})
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

package tlsnet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

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

	admitFn atomic.Pointer[func(peer string) error]
}

// SetAdmit makes the layer ask fn about every peer that opens its channel,
// after the TLS handshake has authenticated it and before either side
// sends anything on the channel: a non-nil error refuses the connection
// (the dialler's [Layer.Dial] fails with [ErrRefused]) and is logged. The
// ledger passes its revocation list. Nil admits every authenticated peer,
// as before any call.
func (l *Layer) SetAdmit(fn func(peer string) error) {
	if fn == nil {
		l.admitFn.Store(nil)
		return
	}
	l.admitFn.Store(&fn)
}

func (l *Layer) admit(peer string) error {
	if fn := l.admitFn.Load(); fn != nil {
		return (*fn)(peer)
	}
	return nil
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
// another agency, when the peer refuses ours, with [ErrUnknownChannel]
// when the peer has no open layer of this name, and with [ErrRefused] when
// the peer's layer does not admit this replica.
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
	case statusRefused:
		return nil, ErrRefused
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

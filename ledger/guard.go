package ledger

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// guard is the Raft transport: Raft RPCs only from current members.
//
// Outbound RPCs go through one raft.NetworkTransport. Every inbound Raft
// connection gets a NetworkTransport of its own, so that each RPC it
// decodes is known to come from the replica that the connection's
// certificate names (tlsnet.PeerID). An RPC is refused before Raft sees
// it (an error answer, Status.RefusedRPCs, a log line) when its header
// speaks for another replica than the certificate's, or when that replica
// is not a voter of the latest configuration this replica knows. A
// replica that knows no configuration yet (opened to be added) admits any
// authenticated peer: the leader that adds it is not in its configuration
// until the log or a snapshot arrives. Connections that the transport did
// not authenticate (not tlsnet) are refused. Revoked replicas do not get
// that far: the transport's admission check (tlsnet.Layer.SetAdmit, given
// Ledger.admitPeer) refuses them when they open the channel.
type guard struct {
	*raft.NetworkTransport // outbound; its listener never accepts

	l       *Ledger
	logger  hclog.Logger
	consume chan raft.RPC
	hb      atomic.Pointer[func(raft.RPC)]
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	inbound map[*raft.NetworkTransport]*oneConn
}

// admitter is a transport that refuses peers by replica ID right after
// authenticating them (tlsnet.Layer).
type admitter interface {
	SetAdmit(func(peer string) error)
}

const raftTimeout = 10 * time.Second

func newGuard(l *Ledger, logger hclog.Logger) *guard {
	g := &guard{l: l, logger: logger, consume: make(chan raft.RPC), done: make(chan struct{}),
		inbound: map[*raft.NetworkTransport]*oneConn{}}
	g.NetworkTransport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &dialOnly{raftLayer: raftLayer{l.demux}, closed: make(chan struct{})},
		MaxPool: 3, Timeout: raftTimeout, Logger: logger,
	})
	if a, ok := l.demux.inner.(admitter); ok {
		a.SetAdmit(l.admitPeer)
	}
	return g
}

// Consumer implements raft.Transport: the inbound RPCs that passed the checks.
func (g *guard) Consumer() <-chan raft.RPC { return g.consume }

// SetHeartbeatHandler implements raft.Transport.
func (g *guard) SetHeartbeatHandler(fn func(raft.RPC)) { g.hb.Store(&fn) }

// start accepts inbound Raft connections, once Raft runs.
func (g *guard) start() {
	g.wg.Add(1)
	go g.acceptLoop()
}

func (g *guard) acceptLoop() {
	defer g.wg.Done()
	for {
		c, err := g.l.demux.acceptKind(g.l.demux.raftCh)
		if err != nil {
			return
		}
		peer, err := tlsnet.PeerID(c)
		if err != nil {
			g.l.refusedConns.Add(1)
			g.l.log.Warn("raft connection from an unauthenticated peer refused", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		g.serve(c, peer)
	}
}

// serve runs one inbound connection's RPCs through a transport of its own.
func (g *guard) serve(c net.Conn, peer string) {
	one := &oneConn{conn: &inConn{Conn: c, ended: make(chan struct{})}, shut: make(chan struct{})}
	in := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: one, MaxPool: 1, Timeout: raftTimeout, Logger: g.logger})
	in.SetHeartbeatHandler(func(rpc raft.RPC) {
		if g.admit(peer, rpc, one) {
			g.heartbeat(rpc)
		}
	})
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		in.Close()
		return
	}
	g.inbound[in] = one
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		defer func() {
			in.Close()
			g.mu.Lock()
			delete(g.inbound, in)
			g.mu.Unlock()
		}()
		for {
			select {
			case rpc := <-in.Consumer():
				if !g.admit(peer, rpc, one) {
					continue
				}
				select {
				case g.consume <- rpc:
				case <-g.done:
					return
				}
			case <-one.conn.ended:
				return
			case <-g.done:
				return
			}
		}
	}()
}

func (g *guard) heartbeat(rpc raft.RPC) {
	if fn := g.hb.Load(); fn != nil && *fn != nil {
		(*fn)(rpc)
		return
	}
	select {
	case g.consume <- rpc:
	case <-g.done:
	}
}

// admit checks one inbound RPC of peer, and answers it with an error when
// it is refused.
func (g *guard) admit(peer string, rpc raft.RPC, c *oneConn) bool {
	err := g.check(peer, rpc.Command)
	if err == nil {
		return true
	}
	g.l.refusedRPCs.Add(1)
	g.l.log.Warn("raft RPC refused", "peer", peer, "rpc", fmt.Sprintf("%T", rpc.Command), "err", err)
	rpc.Respond(nil, fmt.Errorf("refused by replica %s: %w", g.l.cfg.ReplicaID, err))
	if _, ok := rpc.Command.(*raft.InstallSnapshotRequest); ok {
		c.conn.Close() // the snapshot's bytes follow on the stream: drop them with it
	}
	return false
}

func (g *guard) check(peer string, cmd any) error {
	h, ok := cmd.(raft.WithRPCHeader)
	if !ok {
		return errors.New("no RPC header")
	}
	if id := string(h.GetRPCHeader().ID); id != peer {
		return fmt.Errorf("it speaks for replica %q but its certificate names %q", id, peer)
	}
	f := g.l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	if len(servers) > 0 && !isVoter(servers, peer) {
		return fmt.Errorf("replica %s is not a voter of this group", peer)
	}
	return nil
}

// Close stops accepting, closes every inbound transport and connection
// and the outbound transport (and with it the demux), and waits.
func (g *guard) Close() error {
	var err error
	g.once.Do(func() {
		close(g.done)
		g.mu.Lock()
		g.closed = true
		ins := make([]*raft.NetworkTransport, 0, len(g.inbound))
		for in := range g.inbound {
			ins = append(ins, in)
		}
		g.mu.Unlock()
		for _, in := range ins {
			in.Close()
		}
		err = g.NetworkTransport.Close()
		g.wg.Wait()
	})
	return err
}

// dialOnly is the outbound transport's StreamLayer: it dials Raft
// connections; inbound ones go to the guard.
type dialOnly struct {
	raftLayer
	closed chan struct{}
	once   sync.Once
}

func (d *dialOnly) Accept() (net.Conn, error) {
	<-d.closed
	return nil, fmt.Errorf("accept: %w", net.ErrClosed)
}

func (d *dialOnly) Close() error {
	d.once.Do(func() { close(d.closed) })
	return d.raftLayer.Close()
}

// oneConn is the StreamLayer of one inbound connection: Accept returns it
// once, then waits until the transport closes the layer.
type oneConn struct {
	conn  *inConn
	taken atomic.Bool
	shut  chan struct{}
	once  sync.Once
}

func (o *oneConn) Accept() (net.Conn, error) {
	if o.taken.CompareAndSwap(false, true) {
		return o.conn, nil
	}
	<-o.shut
	return nil, fmt.Errorf("accept: %w", net.ErrClosed)
}

// Close is the transport's Close of its layer: it closes the connection.
func (o *oneConn) Close() error {
	o.once.Do(func() { close(o.shut) })
	return o.conn.Close()
}

func (o *oneConn) Addr() net.Addr { return o.conn.LocalAddr() }

func (o *oneConn) Dial(raft.ServerAddress, time.Duration) (net.Conn, error) {
	return nil, errors.New("inbound Raft connection: no dialling")
}

// inConn is an inbound Raft connection that says when it has been closed
// (by the transport's handler when the peer hangs up, or by Close).
type inConn struct {
	net.Conn
	ended chan struct{}
	once  sync.Once
}

// Read reports a read cut short by Close as the end of the stream, which
// Raft's handler does not log as an error.
func (c *inConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, net.ErrClosed) {
		select {
		case <-c.ended:
			err = io.EOF
		default:
		}
	}
	return n, err
}

func (c *inConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.ended)
		err = c.Conn.Close()
	})
	return err
}

func isVoter(servers []raft.Server, id string) bool {
	for _, s := range servers {
		if string(s.ID) == id && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

package ledger

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The ledger shares the StreamLayer it is given between Raft and
// forwarding: the dialler writes one byte after the transport's own
// handshake, connKindRaft or connKindForward, and the accepting side routes
// the connection on it.
const (
	connKindRaft    = 'R'
	connKindForward = 'F'
)

// demux splits one StreamLayer into Raft's connections and forwarding
// connections. Its accept goroutine ends when Close returns.
type demux struct {
	inner  raft.StreamLayer
	raftCh chan net.Conn
	fwdCh  chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newDemux(inner raft.StreamLayer) *demux {
	d := &demux{inner: inner, raftCh: make(chan net.Conn), fwdCh: make(chan net.Conn), done: make(chan struct{})}
	d.wg.Add(1)
	go d.acceptLoop()
	return d
}

func (d *demux) acceptLoop() {
	defer d.wg.Done()
	for {
		c, err := d.inner.Accept()
		if err != nil {
			// A closed transport (a replica cut off) keeps failing: wait
			// rather than spin, until the ledger closes.
			select {
			case <-d.done:
				return
			case <-time.After(50 * time.Millisecond):
				continue
			}
		}
		d.wg.Add(1)
		go d.route(c)
	}
}

// route reads the kind byte of an accepted connection and hands it over.
func (d *demux) route(c net.Conn) {
	defer d.wg.Done()
	var b [1]byte
	c.SetReadDeadline(time.Now().Add(routeTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	ch := d.raftCh
	switch b[0] {
	case connKindRaft:
	case connKindForward:
		ch = d.fwdCh
	default:
		c.Close()
		return
	}
	select {
	case ch <- c:
	case <-d.done:
		c.Close()
	case <-time.After(routeTimeout):
		c.Close()
	}
}

// dial connects to the replica at addr and announces the kind of connection.
func (d *demux) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	c, err := d.inner.Dial(raft.ServerAddress(addr), timeout)
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

func (d *demux) acceptKind(ch chan net.Conn) (net.Conn, error) {
	select {
	case c := <-ch:
		return c, nil
	case <-d.done:
		return nil, fmt.Errorf("accept: %w", net.ErrClosed)
	}
}

// Close closes the underlying layer and waits for the accept goroutines.
func (d *demux) Close() error {
	var err error
	d.once.Do(func() {
		close(d.done)
		err = d.inner.Close()
		d.wg.Wait()
	})
	return err
}

// raftLayer is the StreamLayer Raft's NetworkTransport gets.
type raftLayer struct{ d *demux }

func (r raftLayer) Accept() (net.Conn, error) { return r.d.acceptKind(r.d.raftCh) }
func (r raftLayer) Close() error              { return r.d.Close() }
func (r raftLayer) Addr() net.Addr            { return r.d.inner.Addr() }
func (r raftLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return r.d.dial(string(a), connKindRaft, timeout)
}

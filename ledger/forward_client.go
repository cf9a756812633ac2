package ledger

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// ping checks that the replica at addr answers as id over the transport.
func (l *Ledger) ping(ctx context.Context, id, addr string) error {
	c, err := l.demux.dial(addr, connKindForward, time.Until(deadlineOf(ctx, l.cfg.WriteTimeout)))
	if err != nil {
		return fmt.Errorf("ping %s at %s: %w", id, addr, err)
	}
	defer c.Close()
	if peer, err := tlsnet.PeerID(c); err == nil && peer != id {
		return fmt.Errorf("ping %s at %s: the certificate there names %s", id, addr, peer)
	}
	c.SetDeadline(deadlineOf(ctx, l.cfg.WriteTimeout))
	if err := writeFrame(c, &fwdRequest{Op: fwdPing}); err != nil {
		return fmt.Errorf("ping %s at %s: %w", id, addr, err)
	}
	var resp fwdResponse
	if err := readFrame(c, &resp); err != nil {
		return fmt.Errorf("ping %s at %s: %w", id, addr, err)
	}
	if resp.Replica != id {
		return fmt.Errorf("ping %s at %s: answered as %q", id, addr, resp.Replica)
	}
	return nil
}

// forward sends req to the leader at addr over a pooled connection.
func (l *Ledger) forward(ctx context.Context, addr string, req *fwdRequest) (fwdResponse, error) {
	return l.roundTrip(ctx, addr, req, &l.fwdDials)
}

// roundTrip sends req to the replica at addr over a pooled connection,
// counting a dial in dials unless nil (clock.go's pings are not forwarding).
func (l *Ledger) roundTrip(ctx context.Context, addr string, req *fwdRequest, dials *atomic.Uint64) (fwdResponse, error) {
	deadline := deadlineOf(ctx, l.cfg.WriteTimeout)
	req.Timeout = int64(time.Until(deadline))
	c, err := l.getConn(addr, time.Until(deadline), dials)
	if err != nil {
		return fwdResponse{}, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// The leader answers within req.Timeout; allow for the network.
	c.SetDeadline(deadline.Add(time.Second))
	var resp fwdResponse
	if err := writeFrame(c, req); err != nil {
		c.Close()
		return fwdResponse{}, err
	}
	if err := readFrame(c, &resp); err != nil {
		c.Close()
		return fwdResponse{}, err
	}
	c.SetDeadline(time.Time{})
	l.putConn(addr, c)
	return resp, nil
}

func (l *Ledger) getConn(addr string, timeout time.Duration, dials *atomic.Uint64) (net.Conn, error) {
	l.fwdMu.Lock()
	if l.fwdClosed {
		l.fwdMu.Unlock()
		return nil, ErrClosed
	}
	if cs := l.pool[addr]; len(cs) > 0 {
		c := cs[len(cs)-1]
		l.pool[addr] = cs[:len(cs)-1]
		l.fwdMu.Unlock()
		return c, nil
	}
	l.fwdMu.Unlock()
	if dials != nil {
		dials.Add(1)
	}
	return l.demux.dial(addr, connKindForward, timeout)
}

func (l *Ledger) putConn(addr string, c net.Conn) {
	l.fwdMu.Lock()
	defer l.fwdMu.Unlock()
	if l.fwdClosed || len(l.pool[addr]) >= fwdPool {
		c.Close()
		return
	}
	if l.pool == nil {
		l.pool = map[string][]net.Conn{}
	}
	l.pool[addr] = append(l.pool[addr], c)
}

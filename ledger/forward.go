package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// The ledger shares the StreamLayer it is given between Raft and
// forwarding: the dialler writes one byte after the transport's own
// handshake, connKindRaft or connKindForward, and the accepting side routes
// the connection on it.
const (
	connKindRaft    = 'R'
	connKindForward = 'F'
)

// Forwarding limits.
const (
	// maxFrame bounds one forwarding request or response.
	maxFrame = 16 << 20
	// routeTimeout bounds how long an accepted connection may take to send
	// its kind byte.
	routeTimeout = 10 * time.Second
	// fwdIdle closes a forwarding connection that sends no request for this long.
	fwdIdle = 2 * time.Minute
	// fwdPool bounds the idle forwarding connections kept per peer. A
	// forwarded call holds its connection for the whole round trip, so the
	// pool grows to the number of callers forwarding at once. At 16, 64
	// writers on a follower dialled (a TLS handshake each) for most of
	// their appends: 3,200 appends/s at 526 µs of CPU each, against 7,500
	// and 169 µs at 256 (BenchmarkForwardedAppend, docs/BENCHMARKS.md).
	fwdPool = 256
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

// Forwarding operations.
const (
	fwdCommand   = "command"
	fwdAddVoter  = "add_voter"
	fwdRemove    = "remove"
	fwdReadIndex = "read_index"
	fwdPing      = "ping"
)

// Forwarding response codes.
const (
	codeRetry     = "retry"       // not (or no longer) the leader: find the leader and retry
	codeNoQuorum  = "no_quorum"   // the leader could not commit in time
	codeInvalid   = "invalid"     // the request is malformed
	codeNotMember = "not_member"  // the asking replica is not in the configuration
	codeUnreach   = "unreachable" // add_voter: the new replica did not answer
	codeFailed    = "failed"      // the operation failed for another reason (Msg says why)
)

// fwdRequest is what a follower sends the leader: one JSON frame.
type fwdRequest struct {
	Op      string `json:"op"`
	Command []byte `json:"cmd,omitempty"`  // fwdCommand: the encoded command (encodeCommand), ID set, time not
	ID      string `json:"id,omitempty"`   // add_voter, remove: the replica
	Addr    string `json:"addr,omitempty"` // add_voter: its address
	Timeout int64  `json:"timeout"`        // ns the asker still waits

	local bool // fwdCommand on the leader itself: Command was encoded here, no need to check it
}

// fwdResponse is the leader's answer.
type fwdResponse struct {
	Code    string   `json:"code,omitempty"`
	Msg     string   `json:"msg,omitempty"`
	Outcome *outcome `json:"outcome,omitempty"` // fwdCommand
	Index   uint64   `json:"index,omitempty"`   // read_index: the Raft index to wait for
	Replica string   `json:"replica,omitempty"` // ping: the answering replica
}

// writeFrame writes a 4-byte big-endian length and v as JSON.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("frame of %d bytes: %w", len(b), ErrInvalid)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// readFrame reads one frame written by writeFrame into v, strictly.
func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("read frame: length %d too large: %w", n, ErrInvalid)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read frame: %w", errShort)
	}
	return decodeFrame(b, v)
}

func decodeFrame(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("decode frame: %w", ErrInvalid)
	}
	if d.More() {
		return fmt.Errorf("decode frame: %w", errTrailing)
	}
	return nil
}

// serveForward accepts forwarding connections until the ledger closes.
func (l *Ledger) serveForward() {
	defer l.fwdWG.Done()
	for {
		c, err := l.demux.acceptKind(l.demux.fwdCh)
		if err != nil {
			return
		}
		l.fwdMu.Lock()
		if l.fwdClosed {
			l.fwdMu.Unlock()
			c.Close()
			return
		}
		l.fwdConns[c] = struct{}{}
		l.fwdWG.Add(1)
		l.fwdMu.Unlock()
		go l.handleForward(c)
	}
}

// handleForward answers the requests of one connection, one at a time.
// Only a peer that the transport authenticated (tlsnet.PeerID) is served,
// and only a member of the current configuration may ask for anything
// but a ping.
func (l *Ledger) handleForward(c net.Conn) {
	defer l.fwdWG.Done()
	defer func() {
		l.fwdMu.Lock()
		delete(l.fwdConns, c)
		l.fwdMu.Unlock()
		c.Close()
	}()
	peer, err := tlsnet.PeerID(c)
	if err != nil {
		l.log.Warn("forwarding connection from an unauthenticated peer refused", "remote", c.RemoteAddr().String())
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(fwdIdle))
		var req fwdRequest
		if err := readFrame(c, &req); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				l.log.Debug("forwarding connection", "peer", peer, "err", err)
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		var resp fwdResponse
		if req.Op != fwdPing && !l.isMember(peer) {
			l.log.Warn("forwarded request from a replica outside the configuration refused", "peer", peer, "op", req.Op)
			resp = fwdResponse{Code: codeNotMember}
		} else {
			timeout := min(time.Duration(req.Timeout), l.cfg.WriteTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			resp, _ = l.local(ctx, &req)
			cancel()
		}
		c.SetWriteDeadline(time.Now().Add(routeTimeout))
		if err := writeFrame(c, &resp); err != nil {
			return
		}
	}
}

func (l *Ledger) isMember(id string) bool {
	f := l.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// closeForward stops the forwarding server and client.
func (l *Ledger) closeForward() {
	l.fwdMu.Lock()
	l.fwdClosed = true
	for c := range l.fwdConns {
		c.Close()
	}
	for _, cs := range l.pool {
		for _, c := range cs {
			c.Close()
		}
	}
	l.pool = nil
	l.fwdMu.Unlock()
}

// errRetry says the request should go to the leader again.
var errRetry = errors.New("not the leader")

// local runs req on this replica, which must lead; its error is errRetry
// when it does not (or no longer) lead, or the final error.
func (l *Ledger) local(ctx context.Context, req *fwdRequest) (fwdResponse, error) {
	if req.Op == fwdPing {
		return fwdResponse{Replica: l.cfg.ReplicaID}, nil
	}
	if l.raft.State() != raft.Leader {
		return fwdResponse{Code: codeRetry}, errRetry
	}
	timeout := time.Until(deadlineOf(ctx, l.cfg.WriteTimeout))
	if timeout <= 0 {
		return fwdResponse{Code: codeNoQuorum}, ErrNoQuorum
	}
	fail := func(err error) (fwdResponse, error) {
		switch {
		case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, ErrNoQuorum):
			return fwdResponse{Code: codeNoQuorum}, ErrNoQuorum
		case errors.Is(err, ErrInvalid):
			return fwdResponse{Code: codeInvalid, Msg: err.Error()}, err
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore),
			errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, ErrClosed), errors.Is(err, ErrHalted):
			// Another replica will lead (this one is stepping down,
			// closing or halted): the caller tries again.
			return fwdResponse{Code: codeRetry, Msg: err.Error()}, errRetry
		}
		return fwdResponse{Code: codeFailed, Msg: err.Error()}, err
	}
	switch req.Op {
	case fwdCommand:
		if !req.local {
			c, err := decodeCommand(req.Command)
			if err != nil {
				return fail(fmt.Errorf("%w: %w", err, ErrInvalid))
			}
			if c.Op == opBatch {
				return fail(fmt.Errorf("forwarded batch: %w", ErrInvalid))
			}
		}
		// The leader's clock (Apply clamps it so that time never goes
		// back), and group commit with concurrent commands.
		o, err := l.commit(ctx, req.Command)
		if err != nil {
			return fail(err)
		}
		return fwdResponse{Outcome: &o}, nil
	case fwdAddVoter:
		if err := checkField(req.ID); err != nil || req.ID == "" || req.Addr == "" {
			return fail(fmt.Errorf("add voter: replica ID and address required: %w", ErrInvalid))
		}
		// Refuse a replica that does not answer as itself over the
		// authenticated transport (wrong address, certificate from another
		// CA, another replica ID): adding it would only weaken the quorum.
		if err := l.ping(ctx, req.ID, req.Addr); err != nil {
			return fwdResponse{Code: codeUnreach, Msg: err.Error()}, fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		if err := l.await(l.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, timeout)); err != nil {
			return fail(err)
		}
		return fwdResponse{}, nil
	case fwdRemove:
		if req.ID == "" {
			return fail(fmt.Errorf("remove server: replica ID required: %w", ErrInvalid))
		}
		if err := l.await(l.raft.RemoveServer(raft.ServerID(req.ID), 0, timeout)); err != nil {
			return fail(err)
		}
		return fwdResponse{}, nil
	case fwdReadIndex:
		// The barrier commits an entry of this term through the leader, so
		// every command committed before the read began is applied here
		// when it returns; its applied index is the read index.
		if err := l.await(l.raft.Barrier(timeout)); err != nil {
			return fail(err)
		}
		return fwdResponse{Index: l.fsm.meta().applied}, nil
	}
	return fail(fmt.Errorf("forwarded operation %q: %w", req.Op, ErrInvalid))
}

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
	deadline := deadlineOf(ctx, l.cfg.WriteTimeout)
	req.Timeout = int64(time.Until(deadline))
	c, err := l.getConn(addr, time.Until(deadline))
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

func (l *Ledger) getConn(addr string, timeout time.Duration) (net.Conn, error) {
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
	l.fwdDials.Add(1)
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

// deadlineOf is the earlier of ctx's deadline and now plus d.
func deadlineOf(ctx context.Context, d time.Duration) time.Time {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return deadline
}

// ctxDeadline is ctx's deadline, or the zero time.
func ctxDeadline(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

// onLeader runs req on the leader: here when this replica leads, else
// forwarded to it. While no leader answers it retries, until ctx's deadline
// or Config.WriteTimeout, then fails with ErrNoQuorum.
func (l *Ledger) onLeader(ctx context.Context, req *fwdRequest) (fwdResponse, error) {
	if dl := deadlineOf(ctx, l.cfg.WriteTimeout); !dl.Equal(ctxDeadline(ctx)) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	var last error
	for {
		if err := l.fsm.halted(); err != nil {
			return fwdResponse{}, err
		}
		var resp fwdResponse
		err := errRetry
		if l.raft.State() == raft.Leader {
			resp, err = l.local(ctx, req)
		} else if addr, id := l.raft.LeaderWithID(); id != "" && string(id) != l.cfg.ReplicaID {
			resp, err = l.forward(ctx, string(addr), req)
			if err == nil {
				err = resp.err()
			}
		}
		switch {
		case err == nil:
			return resp, nil
		case errors.Is(err, ErrClosed) && l.closed():
			return fwdResponse{}, ErrClosed
		case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotMember), errors.Is(err, ErrUnreachable):
			return fwdResponse{}, err
		case !errors.Is(err, errRetry):
			// A lost connection, a leader that could not commit in time:
			// the outcome is unknown, and the same request (same command
			// ID) is safe to send again.
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fwdResponse{}, fmt.Errorf("%w: %w", ErrNoQuorum, last)
			}
			return fwdResponse{}, ErrNoQuorum
		case <-l.stop:
			return fwdResponse{}, ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// err maps a forwarded response's code to an error.
func (r fwdResponse) err() error {
	switch r.Code {
	case "":
		return nil
	case codeRetry:
		return errRetry
	case codeNoQuorum:
		return fmt.Errorf("leader: %w", ErrNoQuorum)
	case codeInvalid:
		return fmt.Errorf("leader: %s: %w", r.Msg, ErrInvalid)
	case codeNotMember:
		return ErrNotMember
	case codeUnreach:
		return fmt.Errorf("%w: %s", ErrUnreachable, r.Msg)
	}
	return fmt.Errorf("leader: %s", r.Msg)
}

func (l *Ledger) closed() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// await waits for a Raft future, or until this replica's Raft has shut
// down: hashicorp/raft never answers a future that was still queued, not
// yet dispatched, when it shut down. The goroutine that waits on such a
// future stays blocked; that happens only in that race at Close.
func (l *Ledger) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-l.raftDown:
		select {
		case err := <-done:
			return err
		default:
			return raft.ErrRaftShutdown
		}
	}
}

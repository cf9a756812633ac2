package ledger

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// earlyForward is a StreamLayer that, the first time Open asks its address
// (as Raft is being created: the demux runs, Raft does not yet), has a
// peer send a forwarded command to this replica and waits a bounded time
// for an answer. Before 5b4f077 the forwarding server ran by then and
// answered it by asking a nil *raft.Raft (a panic that testnet chaos met
// when a replica restarted while its peers wrote through it).
type earlyForward struct {
	raft.StreamLayer
	peer raft.StreamLayer // the asking replica's layer

	once  sync.Once
	conn  net.Conn // the peer's forwarding connection
	err   error    // sending the request
	early bool     // an answer came before Open went on
}

// earlyWait bounds how long the hook waits for an answer that must not
// come while Raft is not running.
const earlyWait = time.Second

func (e *earlyForward) Addr() net.Addr {
	e.once.Do(func() {
		c, err := e.peer.Dial(raft.ServerAddress(e.StreamLayer.Addr().String()), 5*time.Second)
		if err != nil {
			e.err = err
			return
		}
		e.conn = c
		cmd, err := encodeCommand(&command{Op: opAppend})
		if err == nil {
			_, err = c.Write([]byte{connKindForward})
		}
		if err == nil {
			err = writeFrame(c, &fwdRequest{Op: fwdCommand, Command: cmd, Timeout: int64(5 * time.Second)})
		}
		if err != nil {
			e.err = err
			return
		}
		c.SetReadDeadline(time.Now().Add(earlyWait))
		var resp fwdResponse
		e.early = readFrame(c, &resp) == nil
		c.SetReadDeadline(time.Time{})
	})
	return e.StreamLayer.Addr()
}

// TestOpenServesForwardingOnlyOnceRaftRuns: a forwarded request that
// reaches a replica while Open is still creating Raft waits, and is
// answered (here: the asker is no member) once Raft runs; nothing panics.
func TestOpenServesForwardingOnlyOnceRaftRuns(t *testing.T) {
	c := newCluster(t)
	r := c.newReplica("r1", c.ca)
	peer := c.newReplica("r9", c.ca)
	var err error
	if peer.mux, err = listenMux(peer); err != nil {
		t.Fatal(err)
	}
	if r.mux, err = listenMux(r); err != nil {
		t.Fatal(err)
	}
	r.addr = r.mux.Addr().String()
	hook := &earlyForward{StreamLayer: r.mux.Layer("audit"), peer: peer.mux.Layer("audit")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.l, err = Open(ctx, Config{Dir: r.dir, ReplicaID: r.id, Agency: "GB", Signer: testKey,
		Transport: hook, Bootstrap: true, Logger: testLogger(t), WriteTimeout: testWriteTimeout, tune: c.tune})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if hook.err != nil || hook.conn == nil {
		t.Fatalf("the peer's forwarded request was not sent while Open ran: %v", hook.err)
	}
	defer hook.conn.Close()
	if hook.early {
		t.Fatal("a forwarded request was answered before the replica's Raft ran")
	}
	hook.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp fwdResponse
	if err := readFrame(hook.conn, &resp); err != nil {
		t.Fatalf("the forwarded request sent during Open was never answered: %v", err)
	}
	if resp.Code != codeNotMember {
		t.Fatalf("answer to a non-member's forwarded command: code %q (%s); want %q", resp.Code, resp.Msg, codeNotMember)
	}
}

// listenMux listens on the replica's address with its certificate.
func listenMux(r *replica) (*tlsnet.Mux, error) { return tlsnet.Listen(r.addr, r.tls) }

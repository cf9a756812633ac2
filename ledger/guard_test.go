package ledger

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// logBuffer collects log lines from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rogueRaft is a Raft transport speaking on the audit channel with the
// certificate of cfg, outside any ledger: what a removed or stolen replica
// could run.
func rogueRaft(t *testing.T, cfg tlsnet.Config) *raft.NetworkTransport {
	t.Helper()
	mux, err := tlsnet.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := newDemux(mux.Layer("audit"))
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{d}, MaxPool: 1, Timeout: 3 * time.Second, Logger: hclog.NewNullLogger()})
	t.Cleanup(func() {
		tr.Close()
		mux.Close()
	})
	return tr
}

// raftState returns a replica's current term, last log index and term.
func raftState(t *testing.T, l *Ledger) (term, last, lastTerm uint64) {
	t.Helper()
	s := l.raft.Stats()
	var err error
	for _, f := range []struct {
		k string
		v *uint64
	}{{"term", &term}, {"last_log_index", &last}, {"last_log_term", &lastTerm}} {
		if *f.v, err = strconv.ParseUint(s[f.k], 10, 64); err != nil {
			t.Fatalf("raft stat %s = %q", f.k, s[f.k])
		}
	}
	return term, last, lastTerm
}

// attack sends target, over tr, an AppendEntries that would make it
// follow claim as leader in a later term and append a forged entry, and a
// RequestVote for claim in a later term; it returns both errors.
func attack(t *testing.T, tr *raft.NetworkTransport, target *replica, claim, forgedID string) (appendErr, voteErr error) {
	t.Helper()
	term, last, lastTerm := raftState(t, target.l)
	e := entry(99)
	cmd, err := encodeCommand(&command{Op: opAppend, ID: forgedID, Time: time.Now().UnixNano(), Entry: &e})
	if err != nil {
		t.Fatal(err)
	}
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claim), Addr: []byte(tr.LocalAddr())}
	var ar raft.AppendEntriesResponse
	appendErr = tr.AppendEntries(raft.ServerID(target.id), raft.ServerAddress(target.addr), &raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: term + 5, PrevLogEntry: last, PrevLogTerm: lastTerm,
		Entries:           []*raft.Log{{Index: last + 1, Term: term + 5, Type: raft.LogCommand, Data: cmd}},
		LeaderCommitIndex: last + 1,
	}, &ar)
	if appendErr == nil && !ar.Success {
		t.Logf("AppendEntries answered without success: %+v", ar)
	}
	var vr raft.RequestVoteResponse
	voteErr = tr.RequestVote(raft.ServerID(target.id), raft.ServerAddress(target.addr), &raft.RequestVoteRequest{
		RPCHeader: hdr, Term: term + 10, LastLogIndex: last + 100, LastLogTerm: term + 10, LeadershipTransfer: true,
	}, &vr)
	if voteErr == nil && vr.Granted {
		t.Logf("RequestVote granted: %+v", vr)
	}
	return appendErr, voteErr
}

// checkUntouched checks that the forged command was applied nowhere.
func checkUntouched(t *testing.T, c *cluster, forgedID string, size uint64) {
	t.Helper()
	// Give a forged entry time to be applied, were it accepted.
	c.converge()
	for _, r := range c.running() {
		if _, err := r.l.Outcome(forgedID); err == nil {
			t.Errorf("replica %s applied the forged command %s", r.id, forgedID)
		}
		if st := r.l.Status(); st.Size != size {
			t.Errorf("replica %s has %d entries; want %d", r.id, st.Size, size)
		}
	}
}

// TestRemovedReplicaRefused: a replica is removed (and revoked, as the
// node does); its certificate then opens no Raft connection to the others
// (refused when it opens the channel: RefusedConns, a log line), so its
// AppendEntries and RequestVote fail and nothing is applied. A removed
// replica that was not revoked gets through the handshake but its RPCs
// are refused before Raft sees them (RefusedRPCs, a log line).
func TestRemovedReplicaRefused(t *testing.T) {
	for _, revoke := range []bool{true, false} {
		t.Run("revoked="+strconv.FormatBool(revoke), func(t *testing.T) {
			var logs logBuffer
			c := newCluster(t)
			c.logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			c.grow(3)
			lead := c.Leader()
			c.appendAll(lead, 0, 3)
			gone := c.followers()[0]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := lead.l.RemoveServer(ctx, gone.id); err != nil {
				t.Fatalf("RemoveServer(%s): %v", gone.id, err)
			}
			if revoke {
				if err := lead.l.Revoke(ctx, gone.id); err != nil {
					t.Fatalf("Revoke(%s): %v", gone.id, err)
				}
			}
			c.stop(gone)
			c.converge()
			c.Leader()
			target := c.followers()[0]
			term, _, _ := raftState(t, target.l)

			tr := rogueRaft(t, gone.tls)
			appendErr, voteErr := attack(t, tr, target, gone.id, "forged-by-"+gone.id)
			if appendErr == nil || voteErr == nil {
				t.Errorf("removed replica's AppendEntries = %v, RequestVote = %v; want both refused", appendErr, voteErr)
			}
			checkUntouched(t, c, "forged-by-"+gone.id, 3)
			if now, _, _ := raftState(t, target.l); now != term {
				t.Errorf("target's term moved from %d to %d", term, now)
			}
			st := target.l.Status()
			want, line := st.RefusedRPCs, "raft RPC refused"
			if revoke {
				want, line = st.RefusedConns, "connection of a revoked replica refused"
			}
			if want == 0 {
				t.Errorf("target status %+v: the refusal was not counted", st)
			}
			checkLogged(t, &logs, line)
			if revoke {
				err := c.Leader().l.AddVoter(ctx, gone.id, gone.addr)
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "revoked") {
					t.Errorf("AddVoter(%s) after its revocation = %v; want refused as revoked", gone.id, err)
				}
			}
		})
	}
}

// TestRaftClaimedIDMismatch: a member's certificate speaking for another
// member (RPC header ID) is refused before Raft sees it: no forged entry,
// no new term, no vote.
func TestRaftClaimedIDMismatch(t *testing.T) {
	var logs logBuffer
	c := newCluster(t)
	c.logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c.grow(3)
	lead := c.Leader()
	c.appendAll(lead, 0, 3)
	c.converge()
	fs := c.followers()
	target, thief := fs[0], fs[1]
	term, _, _ := raftState(t, target.l)

	tr := rogueRaft(t, thief.tls)
	appendErr, voteErr := attack(t, tr, target, lead.id, "forged-as-"+lead.id)
	if appendErr == nil || voteErr == nil {
		t.Errorf("%s speaking for %s: AppendEntries = %v, RequestVote = %v; want both refused", thief.id, lead.id, appendErr, voteErr)
	}
	checkUntouched(t, c, "forged-as-"+lead.id, 3)
	if now, _, _ := raftState(t, target.l); now != term {
		t.Errorf("target's term moved from %d to %d", term, now)
	}
	if st := target.l.Status(); st.RefusedRPCs == 0 {
		t.Errorf("target status %+v: the refusal was not counted", st)
	}
	checkLogged(t, &logs, "raft RPC refused")
}

// checkLogged checks that a line holding msg was logged, and shows it.
func checkLogged(t *testing.T, logs *logBuffer, msg string) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, msg) {
			t.Logf("logged: %s", line)
			return
		}
	}
	t.Errorf("no log line %q in:\n%s", msg, logs.String())
}

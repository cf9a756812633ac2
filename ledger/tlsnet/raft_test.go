package tlsnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM records the commands it applies, in order, each once: a command
// retried after an ambiguous failure (leadership lost after it was
// appended) may be committed twice.
type listFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.cmds, string(l.Data)) {
		f.cmds = append(f.cmds, string(l.Data))
	}
	return len(f.cmds)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.cmds)
	return listSnapshot(b), err
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	var cmds []string
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	f.cmds = cmds
	f.mu.Unlock()
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

type listSnapshot []byte

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s listSnapshot) Release() {}

// group is one Raft group with one member per mux.
type group struct {
	name   string
	rafts  []*raft.Raft
	fsms   []*listFSM
	trans  []*raft.NetworkTransport
	closed []bool
}

func startGroup(t *testing.T, name string, muxes []*Mux) *group {
	t.Helper()
	g := &group{name: name, closed: make([]bool, len(muxes))}
	var servers []raft.Server
	for _, m := range muxes {
		servers = append(servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(m.ReplicaID()),
			Address:  raft.ServerAddress(m.Addr().String()),
		})
	}
	for _, m := range muxes {
		cfg := raft.DefaultConfig()
		cfg.LocalID = raft.ServerID(m.ReplicaID())
		// Loose enough for a loaded 2-core machine under -race.
		cfg.HeartbeatTimeout = time.Second
		cfg.ElectionTimeout = time.Second
		cfg.LeaderLeaseTimeout = 500 * time.Millisecond
		cfg.CommitTimeout = 5 * time.Millisecond
		cfg.Logger = hclog.NewNullLogger()
		tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  m.Layer(name),
			MaxPool: 3,
			Timeout: 2 * time.Second,
			Logger:  hclog.NewNullLogger(),
		})
		fsm := &listFSM{}
		logs := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(cfg, logs, logs, snaps, tr, raft.Configuration{Servers: servers}); err != nil {
			t.Fatalf("bootstrap %s on %s: %v", name, m.ReplicaID(), err)
		}
		r, err := raft.NewRaft(cfg, fsm, logs, logs, snaps, tr)
		if err != nil {
			t.Fatalf("start %s on %s: %v", name, m.ReplicaID(), err)
		}
		g.rafts = append(g.rafts, r)
		g.fsms = append(g.fsms, fsm)
		g.trans = append(g.trans, tr)
	}
	t.Cleanup(g.shutdown)
	return g
}

func (g *group) shutdown() {
	for i, r := range g.rafts {
		_ = r.Shutdown().Error()
		_ = g.trans[i].Close()
	}
}

// leader waits for one live member to be leader and returns its index.
func (g *group) leader(t *testing.T) int {
	t.Helper()
	at := -1
	eventually(t, 10*time.Second, g.name+" leader", func() bool {
		for i, r := range g.rafts {
			if !g.closed[i] && r.State() == raft.Leader {
				at = i
				return true
			}
		}
		return false
	})
	return at
}

// apply applies n commands named <group>/<prefix>-k through the leader,
// retrying on a leader change. It may run outside the test goroutine.
func (g *group) apply(prefix string, n int) ([]string, error) {
	var cmds []string
	for k := range n {
		cmd := fmt.Sprintf("%s/%s-%d", g.name, prefix, k)
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := errors.New("no leader")
			for i, r := range g.rafts {
				if !g.closed[i] && r.State() == raft.Leader {
					err = r.Apply([]byte(cmd), 5*time.Second).Error()
					break
				}
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return cmds, fmt.Errorf("apply %s: %w", cmd, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// converged waits until every live member has applied exactly want.
func (g *group) converged(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < len(g.fsms); {
		if got := g.fsms[i].list(); g.closed[i] || slices.Equal(got, want) {
			i++
			continue
		} else if time.Now().After(deadline) {
			t.Fatalf("%s replica %d applied %d commands %q; want %d %q", g.name, i, len(got), got, len(want), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRaftTwoGroups runs two independent three-member Raft clusters,
// "audit" and "data", over the same three muxes, applies commands on both
// at once, then closes the mux of the audit leader and checks that the
// others see it gone: the audit group elects another leader, the old one
// steps down, and both groups keep committing.
func TestRaftTwoGroups(t *testing.T) {
	ca := newTestCA(t, "DE")
	var muxes []*Mux
	for _, id := range []string{"r1", "r2", "r3"} {
		muxes = append(muxes, listen(t, config(t, ca, ca, id, time.Now())))
	}
	audit := startGroup(t, "audit", muxes)
	data := startGroup(t, "data", muxes)
	groups := []*group{audit, data}

	want := make([][]string, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want[i], errs[i] = g.apply("first", 30)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, g := range groups {
		g.converged(t, want[i])
	}

	old := audit.leader(t)
	if err := muxes[old].Close(); err != nil {
		t.Fatalf("close mux of %s: %v", muxes[old].ReplicaID(), err)
	}
	for _, g := range groups {
		g.closed[old] = true
	}
	eventually(t, 10*time.Second, "old audit leader steps down", func() bool {
		return audit.rafts[old].State() != raft.Leader
	})
	if now := audit.leader(t); now == old {
		t.Fatalf("audit leader is still %s after its mux closed", muxes[old].ReplicaID())
	}
	for i, g := range groups {
		cmds, err := g.apply("after", 10)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = append(want[i], cmds...)
		g.converged(t, want[i])
	}
	if got := audit.fsms[old].list(); len(got) > len(want[0])-10 {
		t.Errorf("the cut-off replica applied %d commands; want at most %d", len(got), len(want[0])-10)
	}
	for _, g := range groups {
		for i, f := range g.fsms {
			for _, cmd := range f.list() {
				if !strings.HasPrefix(cmd, g.name+"/") {
					t.Errorf("%s replica %d applied %q from another group", g.name, i, cmd)
				}
			}
		}
	}
}

package node

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/policy"
)

// joinReplica makes replica id of first's agency from a join bundle and
// starts it; it is closed when the test ends, or earlier by stop.
func joinReplica(t *testing.T, first *testNode, id string) (n *Node, stop func()) {
	t.Helper()
	b, err := first.replicas.NewBundle(id, nil)
	if err != nil {
		t.Fatalf("NewBundle(%s): %v", id, err)
	}
	dir := filepath.Join(t.TempDir(), id)
	if _, err := InitFromBundle(dir, b, ListenConfig{}); err != nil {
		t.Fatalf("InitFromBundle(%s): %v", id, err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err = Open(context.Background(), Config{Dir: dir, Logger: log, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := n.Close(); err != nil {
				t.Errorf("Close(%s): %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

func TestThreeReplicas(t *testing.T) {
	noLeaks(t)
	r1 := startNode(t, "GB")
	r2, stop2 := joinReplica(t, r1, "r2")
	r3, stop3 := joinReplica(t, r1, "r3")
	nodes := []*Node{r1.Node, r2, r3}
	for i, n := range nodes {
		waitFor(t, "replica ready", func() bool { return n.Ready() == nil && n.replicas.isMember(n.fc.ReplicaID()) })
		if i > 0 && n.Audit().Status().Leader != "r1" {
			t.Errorf("replica %d sees leader %q; want r1", i+1, n.Audit().Status().Leader)
		}
	}
	ctx := context.Background()
	tok, err := ReadToken(filepath.Join(r1.dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*httpapi.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = &httpapi.Client{BaseURL: n.APIURL(), Token: tok}
	}

	// Every replica serves the API; a write on a follower is forwarded and
	// seen everywhere.
	if _, err := clients[1].AddUser(ctx, "ann", "auditor"); err != nil {
		t.Fatalf("AddUser on a follower: %v", err)
	}
	for i, c := range clients {
		waitFor(t, "user replicated", func() bool {
			us, err := c.Users(ctx)
			return err == nil && len(us) == 2
		})
		if code, body := get(t, nodes[i].APIURL()+"/readyz"); code != http.StatusOK {
			t.Errorf("replica %d /readyz = %d %s", i+1, code, body)
		}
	}

	// A policy applied on one replica is in force on all.
	p, _ := os.ReadFile("../examples/policy/policy.cedar")
	l, _ := os.ReadFile("../examples/policy/limits.yaml")
	v, err := clients[2].ApplyPolicy(ctx, httpapi.PolicyFiles{PolicyName: "policy.cedar", Policy: string(p),
		LimitsName: "limits.yaml", Limits: string(l)})
	if err != nil {
		t.Fatalf("ApplyPolicy on r3: %v", err)
	}
	if want, _ := policy.Parse(policy.Files{Policy: p, Limits: l}); want.Version() != v {
		t.Errorf("applied version %s; want %s", v, want.Version())
	}
	for _, n := range nodes {
		waitFor(t, "policy in force on every replica", func() bool { return n.Policy().Version() == v })
		// Its retention is the audit ledger's replicated rule.
		if got, want := n.aud.Retention(), n.Policy().Retention(); got != want {
			t.Errorf("audit ledger retention %v; want the policy's %v", got, want)
		}
	}

	// The card lists all three replicas, and each replica admits the others.
	waitFor(t, "card lists three replicas", func() bool {
		c, err := clients[0].Card(ctx)
		if err != nil {
			return false
		}
		cd, err := card.Parse([]byte(c.Card))
		return err == nil && len(cd.Replicas) == 3
	})

	// With two of three replicas stopped, the survivor is not ready and its
	// API answers 503 with the reason.
	stop2()
	stop3()
	waitFor(t, "r1 not ready", func() bool { return r1.Ready() != nil })
	code, body := get(t, r1.APIURL()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "quorum") {
		t.Errorf("/readyz with 1 of 3 = %d %s; want 503 naming the quorum", code, body)
	}
	_, err = clients[0].AddUser(ctx, "bob", "auditor")
	var apiErr *httpapi.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Errorf("AddUser with 1 of 3 = %v; want 503", err)
	}
}

func TestRemoveReplica(t *testing.T) {
	noLeaks(t)
	r1 := startNode(t, "GB")
	r2, stop2 := joinReplica(t, r1, "r2")
	waitFor(t, "r2 ready", func() bool { return r2.Ready() == nil && r2.replicas.isMember("r2") })
	ctx := context.Background()
	if err := r1.replicas.RemoveReplica(ctx, "test", "r2"); err != nil {
		t.Fatalf("RemoveReplica(r2): %v", err)
	}
	if r1.replicas.isMember("r2") {
		t.Errorf("r2 still a member after its removal")
	}
	if !r1.aud.Revoked("r2") || !r1.data.Revoked("r2") {
		t.Errorf("r2 not revoked in both groups after its removal")
	}
	if err := r1.replicas.addReplica(ctx, "r2", r2.mux.Addr().String()); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("re-adding a removed replica: %v; want refused", err)
	}
	if err := r1.replicas.RemoveReplica(ctx, "test", "r9"); !errors.Is(err, httpapi.ErrNotFound) {
		t.Errorf("RemoveReplica(r9) = %v; want ErrNotFound", err)
	}
	stop2()
	// Alone again, r1 is a quorum of one.
	if _, err := r1.admin.AddUser(ctx, "ann", "auditor"); err != nil {
		t.Errorf("AddUser on r1 alone after the removal: %v", err)
	}
}

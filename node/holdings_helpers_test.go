package node

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// applyExamplePolicy applies examples/policy to n (FR may match and sync
// phone, email, address and document, not btc; stewards import).
func applyExamplePolicy(t testing.TB, n *testNode) {
	t.Helper()
	p, err := os.ReadFile("../examples/policy/policy.cedar")
	if err != nil {
		t.Fatal(err)
	}
	l, err := os.ReadFile("../examples/policy/limits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.admin.ApplyPolicy(context.Background(), httpapi.PolicyFiles{PolicyName: "policy.cedar",
		Policy: string(p), LimitsName: "limits.yaml", Limits: string(l)}); err != nil {
		t.Fatalf("ApplyPolicy: %v", err)
	}
}

// steward adds a steward to n and returns its client on api.
func steward(t testing.TB, n *testNode, api string) *httpapi.Client {
	t.Helper()
	u, err := n.admin.AddUser(context.Background(), "sam", "steward")
	if err != nil {
		t.Fatalf("AddUser(steward): %v", err)
	}
	return &httpapi.Client{BaseURL: api, Token: u.Token}
}

// startStoppable is startNode with a stop function (closed once).
func startStoppable(t testing.TB, cc string, syncInterval time.Duration) (*testNode, func()) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node-"+cc)
	res, err := Init(InitConfig{Dir: dir, Agency: cc, Name: "Agency " + cc})
	if err != nil {
		t.Fatalf("Init(%s): %v", cc, err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := Open(context.Background(), Config{Dir: dir, Logger: log, WatchInterval: 50 * time.Millisecond,
		SyncInterval: syncInterval})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	poll(t, "node ready", time.Minute, func() bool { return n.Ready() == nil })
	tok, err := ReadToken(res.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	poll(t, cc+" admin seeded", time.Minute, func() bool { _, err := n.Audit().Get(nsNode, adminSeeded); return err == nil })
	return &testNode{Node: n, dir: dir, admin: &httpapi.Client{BaseURL: n.APIURL(), Token: tok}}, stop
}

// poll waits until cond holds, failing t after timeout.
func poll(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNodeExportVerify runs a node in-process, exports its ledger through
// the API client the ledger verbs use (apiClient, Client.Export,
// Export.WriteDir) and checks the export with 'xborder ledger verify'.
func TestNodeExportVerify(t *testing.T) {
	// Runs last, once the node has stopped: nothing of it may be left.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "gb")
	xb := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, stderr := xb("init", "--agency", "GB", "--name", "UK Agency", "--dir", dir); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var nodeOut, nodeErr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"node", "run", "--dir", dir}, strings.NewReader(""), &nodeOut, &nodeErr)
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 || !strings.Contains(nodeOut.String(), "node stopped") {
				t.Errorf("node run: exit %d, stdout %q", code, nodeOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("node run did not stop after its context ended")
		}
	}()
	if code, _, stderr := xb("node", "status", "--dir", dir, "--wait", "60s"); code != 0 {
		t.Fatalf("node status: exit %d: %s\nnode log:\n%s", code, stderr, nodeErr.String())
	}
	tok := filepath.Join(t.TempDir(), "alice.token")
	if code, _, stderr := xb("user", "add", "alice", "--role", "auditor", "--dir", dir, "--out", tok); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, stderr)
	}
	// The example policy lets auditors export.
	if code, _, stderr := xb("policy", "apply", "--dir", dir, "--policy", "../../examples/policy/policy.cedar",
		"--limits", "../../examples/policy/limits.yaml"); code != 0 {
		t.Fatalf("policy apply: exit %d: %s", code, stderr)
	}

	cl, err := apiClient(&clientFlags{tokenFile: tok}, dir)
	if err != nil {
		t.Fatalf("apiClient: %v", err)
	}
	x, err := cl.Export(context.Background())
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	out := filepath.Join(t.TempDir(), "export")
	if err := x.WriteDir(out); err != nil {
		t.Fatalf("WriteDir: %v", err)
	}
	code, stdout, stderr := xb("ledger", "verify", out, "--key", filepath.Join(dir, "agency.pub"))
	if code != 0 {
		t.Fatalf("ledger verify: exit %d: %s%s", code, stdout, stderr)
	}
	// The export holds the user entry and the export entry itself.
	entries, err := os.ReadFile(filepath.Join(out, "entries.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type":"user"`, `"type":"export"`} {
		if !strings.Contains(string(entries), want) {
			t.Errorf("entries.jsonl lacks %s", want)
		}
	}
	// A changed byte fails verification with exit 5.
	bad := bytes.Replace(entries, []byte(`"actor":"user:admin"`), []byte(`"actor":"user:mallory"`), 1)
	if bytes.Equal(bad, entries) {
		t.Fatal("no admin actor in the export")
	}
	if err := os.WriteFile(filepath.Join(out, "entries.jsonl"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := xb("ledger", "verify", out, "--key", filepath.Join(dir, "agency.pub")); code != exitVerify {
		t.Errorf("ledger verify of an altered export: exit %d; want %d", code, exitVerify)
	}
}

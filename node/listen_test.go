package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPortsBoundAtStartAndKept: init writes port 0 and binds nothing; the
// first start binds free ports and records them in listen.json; a restart
// binds the same raft and p2p ports, which the Raft configuration and the
// agency card name, and a fresh API port.
func TestPortsBoundAtStartAndKept(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	res, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"})
	if err != nil {
		t.Fatal(err)
	}
	want := ListenConfig{Raft: DefaultListenRaft, P2P: DefaultListenP2P, API: DefaultListenAPI}
	if res.Config.Listen != want {
		t.Errorf("Init wrote listen %+v; want %+v", res.Config.Listen, want)
	}
	if _, err := ReadBound(dir); err == nil {
		t.Error("listen.json exists before the first start")
	}
	start := func() (*Node, *Bound) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := Open(ctx, Config{Dir: dir, WatchInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		b, err := ReadBound(dir)
		if err != nil {
			n.Close()
			t.Fatalf("ReadBound after Open: %v", err)
		}
		if b.Raft != n.mux.Addr().String() || b.P2P != n.host.Addrs()[0].String() || "http://"+b.API != n.APIURL() {
			t.Errorf("listen.json = %+v; want raft %s, p2p %s, API %s", b, n.mux.Addr(), n.host.Addrs()[0], n.APIURL())
		}
		for _, a := range []string{b.Raft, b.P2P, b.API} {
			if strings.HasSuffix(a, ":0") || strings.HasSuffix(a, "/0") {
				t.Errorf("listen.json names port 0: %+v", b)
			}
		}
		return n, b
	}
	n, first := start()
	waitFor(t, "node ready", func() bool { return n.Ready() == nil })
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	n, again := start()
	defer func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if again.Raft != first.Raft || again.P2P != first.P2P {
		t.Errorf("restart bound %+v; want raft and p2p of the first start, %+v", again, first)
	}
	waitFor(t, "node ready after the restart", func() bool { return n.Ready() == nil })
	ms, err := n.Audit().Members()
	if err != nil || len(ms) != 1 || ms[0].Addr != first.Raft {
		t.Errorf("audit members = %+v, %v; want r1 at %s", ms, err, first.Raft)
	}
}

func TestKeepPorts(t *testing.T) {
	dir := t.TempDir()
	prev := `{"raft": "127.0.0.1:4100", "p2p": "/ip4/127.0.0.1/tcp/4101", "api": "127.0.0.1:4102"}`
	if err := os.WriteFile(filepath.Join(dir, ListenFile), []byte(prev), publicFileMode); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want ListenConfig }{
		{ListenConfig{"127.0.0.1:0", "/ip4/127.0.0.1/tcp/0", "127.0.0.1:0"},
			ListenConfig{"127.0.0.1:4100", "/ip4/127.0.0.1/tcp/4101", "127.0.0.1:0"}},
		{ListenConfig{"127.0.0.1:7000", "/ip4/127.0.0.1/tcp/4001", "127.0.0.1:7070"},
			ListenConfig{"127.0.0.1:7000", "/ip4/127.0.0.1/tcp/4001", "127.0.0.1:7070"}},
		{ListenConfig{"10.0.0.1:0", "/ip4/10.0.0.1/tcp/0", "127.0.0.1:0"},
			ListenConfig{"10.0.0.1:0", "/ip4/10.0.0.1/tcp/0", "127.0.0.1:0"}},
		{ListenConfig{"0.0.0.0:0", "/ip6/::1/tcp/0", ""},
			ListenConfig{"0.0.0.0:0", "/ip6/::1/tcp/0", ""}},
	}
	for _, tt := range tests {
		if got := keepPorts(dir, tt.in); got != tt.want {
			t.Errorf("keepPorts(%+v) = %+v; want %+v", tt.in, got, tt.want)
		}
	}
	if got, in := keepPorts(t.TempDir(), tests[0].in), tests[0].in; got != in {
		t.Errorf("keepPorts without listen.json = %+v; want %+v", got, in)
	}
}

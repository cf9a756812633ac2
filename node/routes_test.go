package node

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRoutes: routes.json round-trips; no file is no routes; a file that
// does not parse or names an address of the wrong form is refused with a
// message that names it.
func TestRoutes(t *testing.T) {
	dir := t.TempDir()
	if r, err := ReadRoutes(dir); err != nil || len(r.Raft)+len(r.P2P) != 0 {
		t.Fatalf("ReadRoutes of a directory without routes.json = %+v, %v; want none", r, err)
	}
	want := Routes{Raft: map[string]string{"127.0.0.1:7001": "127.0.0.1:9101"},
		P2P: map[string]string{"/ip4/127.0.0.1/tcp/7102": "/ip4/127.0.0.1/tcp/9102"}}
	if err := WriteRoutes(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRoutes(dir)
	if err != nil || !maps.Equal(got.Raft, want.Raft) || !maps.Equal(got.P2P, want.P2P) {
		t.Fatalf("ReadRoutes after WriteRoutes = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct{ name, file, says string }{
		{"not JSON", `{"raft": [`, "routes.json"},
		{"raft address without a port", `{"raft": {"127.0.0.1": "127.0.0.1:9101"}}`, `"127.0.0.1" is not host:port`},
		{"p2p address not a multiaddr", `{"p2p": {"/ip4/127.0.0.1/tcp/7102": "127.0.0.1:9102"}}`, `"127.0.0.1:9102" is not a multiaddr`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, RoutesFile), []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadRoutes(d)
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "fix or remove the file") {
				t.Errorf("ReadRoutes(%s) = %v; want an error naming %q and what to do", tc.file, err, tc.says)
			}
		})
	}
}

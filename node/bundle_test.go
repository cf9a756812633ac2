package node

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/tlsnet"
)

func TestJoinBundle(t *testing.T) {
	noLeaks(t)
	gb := startNode(t, "GB")
	b, err := gb.replicas.NewBundle("r2", []string{"127.0.0.1"})
	if err != nil {
		t.Fatalf("NewBundle: %v", err)
	}
	path := filepath.Join(t.TempDir(), "r2.bundle")
	if err := WriteBundle(path, b); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if err := WriteBundle(path, b); err == nil {
		t.Errorf("WriteBundle replaced an existing file")
	}
	data, _ := os.ReadFile(path)
	got, err := ParseBundle(data)
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	if !reflect.DeepEqual(got.Cluster, []string{gb.mux.Addr().String()}) || got.Replica != "r2" || got.Agency != "GB" {
		t.Errorf("bundle = %s/%s cluster %v; want GB/r2 through %s", got.Agency, got.Replica, got.Cluster, gb.mux.Addr())
	}
	if strings.Contains(string(data), "PRIVATE KEY") && strings.Contains(string(data), mustRead(t, filepath.Join(gb.dir, CAKeyFile))) {
		t.Errorf("the bundle carries the CA key")
	}

	dir := filepath.Join(t.TempDir(), "r2")
	res, err := InitFromBundle(dir, got, ListenConfig{})
	if err != nil {
		t.Fatalf("InitFromBundle: %v", err)
	}
	if res.Config.Bootstrap || res.Config.ReplicaID() != "r2" || !reflect.DeepEqual(res.Config.Join, got.Cluster) {
		t.Errorf("joined config = %+v; want r2, no bootstrap, join %v", res.Config, got.Cluster)
	}
	if err := CheckSecrets(dir); err != nil {
		t.Errorf("CheckSecrets of the joined directory: %v", err)
	}
	if mustRead(t, filepath.Join(dir, P2PKeyFile)) == mustRead(t, filepath.Join(gb.dir, P2PKeyFile)) ||
		mustRead(t, filepath.Join(dir, StorageKeyFile)) == mustRead(t, filepath.Join(gb.dir, StorageKeyFile)) {
		t.Errorf("the new replica shares the first one's libp2p identity or at-rest key")
	}
	if mustRead(t, filepath.Join(dir, AgencyKeyFile)) != mustRead(t, filepath.Join(gb.dir, AgencyKeyFile)) ||
		mustRead(t, filepath.Join(dir, EpochSeedFile)) != mustRead(t, filepath.Join(gb.dir, EpochSeedFile)) {
		t.Errorf("the new replica lacks the agency key or epoch seed")
	}

	// The new replica starts, waits to be added, and its certificate gets
	// through the first replica's mutual TLS (a channel the first replica
	// does not serve answers "unknown" only after both certificates check).
	r2, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open of the joined replica: %v", err)
	}
	defer r2.Close()
	if err := r2.Ready(); err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Errorf("Ready of a replica not yet added = %v; want no quorum", err)
	}
	if _, err := r2.mux.Layer("probe").Dial(raft.ServerAddress(gb.mux.Addr().String()), 5*time.Second); !errors.Is(err, tlsnet.ErrUnknownChannel) {
		t.Errorf("r2 dials r1: %v; want through TLS to ErrUnknownChannel", err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseBundleRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"}); err != nil {
		t.Fatal(err)
	}
	fc, _ := LoadConfig(dir)
	good, err := makeBundle(dir, fc, "r2", nil, []string{"127.0.0.1:1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBundle(good.Marshal()); err != nil {
		t.Fatalf("ParseBundle(good) = %v", err)
	}
	other := t.TempDir()
	if _, err := Init(InitConfig{Dir: other, Agency: "GB", Name: "Agency GB"}); err != nil {
		t.Fatal(err)
	}
	foreign, err := makeBundle(other, fc, "r2", nil, []string{"127.0.0.1:1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(b *Bundle)
	}{
		{"version", func(b *Bundle) { b.Version = 2 }},
		{"replica not the certificate's", func(b *Bundle) { b.Replica = "r3" }},
		{"certificate of another CA", func(b *Bundle) { b.ReplicaCert, b.ReplicaKey = foreign.ReplicaCert, foreign.ReplicaKey }},
		{"key not the certificate's", func(b *Bundle) { b.ReplicaKey = foreign.ReplicaKey }},
		{"no cluster", func(b *Bundle) { b.Cluster = nil }},
		{"bad cluster address", func(b *Bundle) { b.Cluster = []string{"nowhere"} }},
		{"short seed", func(b *Bundle) { b.EpochSeed = "abcd" }},
		{"no token", func(b *Bundle) { b.AdminToken = " " }},
		{"bad agency key", func(b *Bundle) { b.AgencyKey = "x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := *good
			tt.change(&b)
			if _, err := ParseBundle(b.Marshal()); !errors.Is(err, ErrBundle) {
				t.Errorf("ParseBundle = %v; want ErrBundle", err)
			}
		})
	}
	var m map[string]any
	json.Unmarshal(good.Marshal(), &m)
	m["ca_key"] = "x"
	extra, _ := json.Marshal(m)
	for name, data := range map[string][]byte{"unknown field": extra, "trailing data": append(good.Marshal(), "{}"...), "not JSON": []byte("PK")} {
		if _, err := ParseBundle(data); !errors.Is(err, ErrBundle) {
			t.Errorf("ParseBundle(%s) = %v; want ErrBundle", name, err)
		}
	}
}

func FuzzParseBundle(f *testing.F) {
	dir := f.TempDir()
	if _, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"}); err != nil {
		f.Fatal(err)
	}
	fc, _ := LoadConfig(dir)
	b, err := makeBundle(dir, fc, "r2", nil, []string{"127.0.0.1:1"}, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b.Marshal())
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		again, err := ParseBundle(b.Marshal())
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Errorf("a parsed bundle does not round-trip: %v", err)
		}
	})
}

func FuzzParseJoinRequest(f *testing.F) {
	f.Add([]byte(`{"raft":"127.0.0.1:7000"}` + "\n"))
	f.Add([]byte(`{"raft":":7000"}`))
	f.Add([]byte(`{"raft":"x","id":"r9"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := parseJoinRequest(line)
		if err != nil {
			return
		}
		if _, _, err := net.SplitHostPort(req.Raft); err != nil {
			t.Errorf("accepted transport address %q: %v", req.Raft, err)
		}
	})
}

func TestParseJoinRequest(t *testing.T) {
	for line, ok := range map[string]bool{
		`{"raft":"127.0.0.1:7000"}`: true, `{"raft":"[::1]:1"}`: true,
		`{"raft":":7000"}`: false, `{"raft":"nowhere"}`: false, `{"raft":"h:1","id":"r1"}`: false, `[`: false,
	} {
		if _, err := parseJoinRequest([]byte(line)); (err == nil) != ok {
			t.Errorf("parseJoinRequest(%s) = %v; want ok %v", line, err, ok)
		}
	}
}

// TestJoinStorageKeyOutsideDir: a replica made from a join bundle with
// ReplicaInit.StorageKeyFile has its storage key there, not in its
// directory; config.yaml names it, the replica opens with it and joins;
// without it Open fails naming the file; an existing key file is refused.
func TestJoinStorageKeyOutsideDir(t *testing.T) {
	noLeaks(t)
	r1 := startNode(t, "GB")
	b, err := r1.replicas.NewBundle("r2", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "r2")
	keyFile := filepath.Join(t.TempDir(), "creds", "storage.key")
	res, err := InitReplica(dir, b, ReplicaInit{StorageKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if res.StorageKeyFile != keyFile {
		t.Errorf("StorageKeyFile = %s; want %s", res.StorageKeyFile, keyFile)
	}
	if _, err := os.Stat(filepath.Join(dir, StorageKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DIR/storage.key: %v; want none", err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat %s = %v, %v; want mode 0600", keyFile, fi, err)
	}
	if fc, err := LoadConfig(dir); err != nil || fc.StorageKeyFile != keyFile {
		t.Fatalf("config storage_key_file = %+v, %v", fc, err)
	}
	if _, err := InitReplica(filepath.Join(t.TempDir(), "r3"), b, ReplicaInit{StorageKeyFile: keyFile}); !errors.Is(err, ErrExists) {
		t.Errorf("InitReplica over an existing key file = %v; want ErrExists", err)
	}
	good, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := Open(ctx, Config{Dir: dir}); err == nil || !errors.Is(err, ErrStorageKey) || !strings.Contains(err.Error(), keyFile) {
		if n != nil {
			n.Close()
		}
		t.Fatalf("Open without the key = %v; want ErrStorageKey naming %s", err, keyFile)
	}
	if err := os.WriteFile(keyFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Open(ctx, Config{Dir: dir, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open with the key outside DIR: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	waitFor(t, "r2 a member", func() bool { return n.Ready() == nil && n.replicas.isMember("r2") })
}

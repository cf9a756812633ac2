package node

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestInitConfigRoundTrip(t *testing.T) {
	dir := t.TempDir()
	res, err := Init(InitConfig{Dir: dir, Agency: "TH", Name: "Thai \"DSI\" agency"})
	if err != nil {
		t.Fatal(err)
	}
	fc, err := LoadConfig(dir)
	if err != nil {
		t.Fatalf("LoadConfig of what Init wrote: %v", err)
	}
	if fc.Agency != "TH" || fc.Name != `Thai "DSI" agency` || fc.ReplicaID() != "r1" || !fc.Bootstrap ||
		!strings.HasPrefix(fc.Listen.Raft, "127.0.0.1:") || !strings.HasPrefix(fc.Listen.P2P, "/ip4/127.0.0.1/tcp/") ||
		!strings.HasPrefix(fc.Listen.API, "127.0.0.1:") || !reflect.DeepEqual(fc, res.Config) {
		t.Errorf("LoadConfig = %+v; want what Init made, %+v", fc, res.Config)
	}
	// Every field is documented: a comment line precedes each key.
	b, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.Contains(l, ": ") && !strings.HasPrefix(strings.TrimSpace(l), "#") &&
			!strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("config.yaml line %d %q has no comment above it", i+1, l)
		}
	}
	if _, err := Init(InitConfig{Dir: dir, Agency: "TH", Name: "x"}); !errors.Is(err, ErrExists) {
		t.Errorf("second Init = %v; want ErrExists", err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"lower-case agency", "agency: gb\nname: x\n", "agency"},
		{"no name", "agency: GB\n", "name"},
		{"unknown field", "agency: GB\nname: x\nlisten_api: 1\n", "listen_api"},
		{"bad replica", "agency: GB\nname: x\nreplica: 'a b'\n", "replica"},
		{"bad api address", "agency: GB\nname: x\nlisten: {api: nowhere}\n", "listen.api"},
		{"bad p2p address", "agency: GB\nname: x\nlisten: {p2p: tcp://x}\n", "listen.p2p"},
		{"bad validity", "agency: GB\nname: x\ncard_validity: forever\n", "card_validity"},
		{"bad level", "agency: GB\nname: x\nlog_level: loud\n", "log_level"},
		{"bad sync interval", "agency: GB\nname: x\nsync_interval: often\n", "sync_interval"},
		{"sync interval under 1s", "agency: GB\nname: x\nsync_interval: 10ms\n", "sync_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("config.yaml", []byte(tt.yaml))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig(%q) = %v; want ErrConfig naming %s", tt.yaml, err, tt.want)
			}
		})
	}
	if c, err := parseConfig("config.yaml", []byte("agency: GB\nname: x\nsync_interval: 5m\n")); err != nil {
		t.Errorf("sync_interval 5m: %v", err)
	} else if d, _ := c.Sync(); d != 5*time.Minute {
		t.Errorf("sync_interval 5m reads as %v", d)
	}
	if _, err := LoadConfig(t.TempDir()); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "xborder init") {
		t.Errorf("LoadConfig of an empty directory = %v; want ErrConfig telling to run init", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("agency: GB\nname: x\nlisten: {api: '127.0.0.1:1', raft: '127.0.0.1:2', p2p: /ip4/127.0.0.1/tcp/3}\n"))
	f.Add([]byte("agency: GB\nname: x\ncard_validity: 1h\nlog_level: debug\nbootstrap: true\n"))
	f.Add([]byte("{"))
	f.Add([]byte("agency: GB\nname: x\njoin: ['127.0.0.1:1', '[::1]:2']\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := parseConfig("config.yaml", b)
		if err != nil {
			return
		}
		// What parses renders to YAML that parses to the same config.
		again, err := parseConfig("config.yaml", fc.render())
		if fc.Replica == "" {
			fc.Replica = "r1"
		}
		if err != nil || !reflect.DeepEqual(again, fc) {
			t.Errorf("render of %+v parses to %+v, %v", fc, again, err)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:0": true, "[::1]:7070": true, "localhost:7070": true,
		"0.0.0.0:7070": false, "192.0.2.1:7070": false, ":7070": false, "example.org:80": false,
	} {
		if got, err := isLoopback(addr); err != nil || got != want {
			t.Errorf("isLoopback(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	if _, err := isLoopback("nonsense"); !errors.Is(err, ErrConfig) {
		t.Errorf("isLoopback(nonsense) = %v; want ErrConfig", err)
	}
}

func TestFileConfigAPIURL(t *testing.T) {
	for api, want := range map[string]string{
		"127.0.0.1:7070": "http://127.0.0.1:7070", "localhost:1": "http://localhost:1",
		"0.0.0.0:7070": "https://127.0.0.1:7070", ":7070": "https://127.0.0.1:7070", "10.0.0.1:7070": "https://10.0.0.1:7070",
	} {
		c := FileConfig{Listen: ListenConfig{API: api}}
		if got := c.APIURL(); got != want {
			t.Errorf("APIURL() with listen.api %s = %s; want %s", api, got, want)
		}
	}
}

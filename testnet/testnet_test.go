package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// xborder is the path of the xborder program TestMain builds, whose
// verbs the federations of these tests run.
var xborder string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "testnet-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		xborder = filepath.Join(dir, "xborder")
		out, err := exec.Command("go", "build", "-o", xborder, "../cmd/xborder").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build xborder: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

// checkGone checks that no process of pids runs and no port of ports
// listens.
func checkGone(t *testing.T, pids, ports []int) {
	t.Helper()
	for _, p := range pids {
		if processAlive(p) {
			t.Errorf("process %d still runs", p)
		}
	}
	left, err := stillListening(ports)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("ports %v still listen", left)
	}
}

// TestUpClose builds a one-agency federation, checks that its replicas
// run and listen, and that Close leaves no process and no port.
func TestUpClose(t *testing.T) {
	var progress bytes.Buffer
	n, err := Up(context.Background(), Config{Dir: t.TempDir(), Binary: xborder, Agencies: 1, Replicas: 1, Holdings: 200, Progress: &progress})
	if err != nil {
		t.Fatalf("Up: %v\n%s", err, progress.String())
	}
	pids, ports := n.PIDs(), n.Ports()
	if len(pids) != 1 || len(ports) != 3 {
		t.Errorf("PIDs %v, ports %v; want 1 process with 3 ports", pids, ports)
	}
	for _, p := range pids {
		if !processAlive(p) {
			t.Errorf("replica process %d is not running", p)
		}
	}
	l, err := ListeningPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if !l[p] {
			t.Errorf("port %d of a running replica does not listen", p)
		}
	}
	var table bytes.Buffer
	n.PrintTable(&table)
	tok, err := os.ReadFile(n.Agencies[0].Tokens["investigator"])
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(n.Agencies[0].Tokens["investigator"]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("investigator token file: %v, mode %v; want mode 0600", err, fi.Mode().Perm())
	}
	if bytes.Contains(table.Bytes(), bytes.TrimSpace(tok)) {
		t.Errorf("the table shows a token")
	}
	if !strings.Contains(table.String(), n.Agencies[0].Tokens["investigator"]) || !strings.Contains(table.String(), n.Agencies[0].Replicas[0].PeerID) {
		t.Errorf("the table lacks the token file or the peer ID:\n%s", table.String())
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	checkGone(t, pids, ports)
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestUpCancelled checks that a federation whose building is cut short
// stops what it had started.
func TestUpCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel as soon as the first replica is ready.
	pw := &cancelOn{substr: "replica r1 ready", cancel: cancel}
	_, err := Up(ctx, Config{Dir: dir, Binary: xborder, Agencies: 2, Replicas: 3, Holdings: 200, Progress: pw})
	if err == nil {
		t.Fatal("Up with a cancelled context succeeded")
	}
	// Every replica directory's ports must be free, and no process may
	// name the directory.
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "r*", "listen.json"))
	var ports []int
	for _, m := range matches {
		p, err := boundPorts(filepath.Dir(m))
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p...)
	}
	if len(ports) == 0 {
		t.Fatalf("no replica was made before the cancellation (%v)", err)
	}
	checkGone(t, nil, ports)
	if pids := processesNaming(dir); len(pids) > 0 {
		t.Errorf("processes %v still name %s", pids, dir)
	}
}

type cancelOn struct {
	substr string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(c.substr)) {
		c.cancel()
	}
	return len(p), nil
}

// processesNaming returns the processes whose command line holds s.
func processesNaming(s string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) && processAlive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

var finalLine = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed\n\z`)

// TestDemoFails runs the demo with a broken part: the check that part
// feeds must FAIL, the final line must count it, and nothing of the
// federation may remain. The scenario runs in full on three replicas, so
// the leader kill is exercised too.
func TestDemoFails(t *testing.T) {
	for _, tc := range []struct {
		brk      string
		replicas int
		failing  string // the checks that must fail, and only they, start so
	}{
		{"export", 3, "GB export verifies offline"},
		{"truth", 1, "GB asks about phone"},
	} {
		t.Run(tc.brk, func(t *testing.T) {
			var out bytes.Buffer
			var n *Net
			rep := NewReport(&out)
			err := Demo(context.Background(), Config{Dir: t.TempDir(), Binary: xborder, Agencies: 2, Replicas: tc.replicas,
				Holdings: 500, Break: tc.brk, OnUp: func(x *Net) { n = x }}, rep)
			if err != nil {
				t.Fatalf("Demo: %v", err)
			}
			passed, failed := rep.Counts()
			m := finalLine.FindStringSubmatch(out.String())
			if m == nil || m[1] != fmt.Sprint(passed) || m[2] != fmt.Sprint(failed) {
				t.Errorf("final line %q; want \"%d passed, %d failed\"", m, passed, failed)
			}
			fails := rep.Failed()
			if failed == 0 || failed != len(fails) {
				t.Errorf("%d checks failed (%q); want the broken ones:\n%s", failed, fails, out.String())
			}
			for _, f := range fails {
				if !strings.Contains(f, tc.failing) {
					t.Errorf("check %q failed; only checks %q may:\n%s", f, tc.failing, out.String())
				}
			}
			if !strings.Contains(out.String(), "FAIL  "+tc.failing) {
				t.Errorf("the report shows no FAIL line for %q:\n%s", tc.failing, out.String())
			}
			if n == nil {
				t.Fatal("OnUp was not called")
			}
			checkGone(t, n.PIDs(), n.Ports())
			var doc struct {
				Passed, Failed int
				Steps          []Step
			}
			var js bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(js.Bytes(), &doc); err != nil || doc.Passed != passed || doc.Failed != failed || len(doc.Steps) < 5 {
				t.Errorf("JSON report: %v, passed %d failed %d, %d steps", err, doc.Passed, doc.Failed, len(doc.Steps))
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Dir: "d", Binary: "b"}, ""},
		{Config{Dir: "d", Binary: "b", Agencies: 6}, "1 to 5 agencies"},
		{Config{Dir: "d", Binary: "b", Replicas: 2}, "1, 3 or 5 replicas"},
		{Config{Binary: "b"}, "no directory"},
		{Config{Dir: "d"}, "no xborder binary"},
		{Config{Dir: "d", Binary: "b", Break: "ledger"}, "unknown part"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v; want %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{Dir: "d", Binary: "b"}
	if err := c.Validate(); err != nil || c.Agencies != 3 || c.Replicas != 3 || c.Holdings != 20000 || c.StopGrace != 15*time.Second {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

func TestUpRefusesUsedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(context.Background(), Config{Dir: dir, Binary: xborder, Agencies: 1, Replicas: 1}); err == nil || !os.IsExist(err) && !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Up in a used directory: %v; want a refusal", err)
	}
}

func TestParseProcNetTCP(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
`
	got := map[int]bool{}
	if err := parseProcNetTCP(strings.NewReader(table), got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0xA1B2] || !got[0x50] {
		t.Errorf("listening ports %v; want 41394 and 80", got)
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add("sl local\n 0: 0100007F:A1B2 00000000:0000 0A 0\n")
	f.Add("header\n0: :: x 0A\n1: 0100007F:ZZZZ 0 0A\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		out := map[int]bool{}
		_ = parseProcNetTCP(strings.NewReader(s), out)
		for p := range out {
			if p < 0 || p > 65535 {
				t.Errorf("port %d out of range", p)
			}
		}
	})
}

func FuzzBoundPorts(f *testing.F) {
	f.Add(`{"raft": "127.0.0.1:1", "p2p": "/ip4/127.0.0.1/tcp/2", "api": "127.0.0.1:3"}`)
	f.Add(`{"raft": "127.0.0.1:0", "p2p": "/ip4/127.0.0.1/tcp/", "api": "x"}`)
	f.Add(`{"raft": "x"}`)
	f.Fuzz(func(t *testing.T, s string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "listen.json"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		ports, err := boundPorts(dir)
		if err != nil {
			return
		}
		if len(ports) > 3 {
			t.Errorf("boundPorts: %v; want at most raft, p2p and API", ports)
		}
		for _, p := range ports {
			if p <= 0 || p > 65535 {
				t.Errorf("boundPorts: port %d out of range", p)
			}
		}
	})
}

func TestReportFinalLine(t *testing.T) {
	var out bytes.Buffer
	r := NewReport(&out)
	r.Step("one", "why")
	r.Check(true, "a", "")
	r.Check(false, "b", "went %s", "wrong")
	r.Note("a note")
	r.Finish()
	if !finalLine.MatchString(out.String()) || !strings.HasSuffix(out.String(), "1 passed, 1 failed\n") {
		t.Errorf("report ends %q; want \"1 passed, 1 failed\"", out.String())
	}
	if !strings.Contains(out.String(), "FAIL  b: went wrong") || !strings.Contains(out.String(), "PASS  a") {
		t.Errorf("report lines:\n%s", out.String())
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xborder/xborder/testnet"
)

func TestTestnetUsage(t *testing.T) {
	noPolicy := t.TempDir()
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"testnet", "up", "--agencies", "6"}, "give --agencies 1 to 5"},
		{[]string{"testnet", "demo", "--agencies", "0"}, "give --agencies 1 to 5"},
		{[]string{"testnet", "demo", "--replicas", "2"}, "give --replicas 1, 3 or 5"},
		{[]string{"testnet", "up", "--holdings", "3"}, "give --holdings 10 or more"},
		{[]string{"testnet", "demo", "--policy-dir", noPolicy, "--dir", filepath.Join(noPolicy, "fed")},
			"give --policy-dir a directory that holds policy.cedar and limits.yaml"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), tc.hint) {
			t.Errorf("xborder %s: exit %d, stderr %q; want exit 2 and hint %q", strings.Join(tc.args, " "), code, errb.String(), tc.hint)
		}
	}
}

var testnetPortRE = regexp.MustCompile(`(?m)^\s*(?:raft|p2p|api):\s*"[^"]*[:/](\d+)"`)

// checkNothingLeft checks that no process names dir and that no port of
// the replicas under dir listens.
func checkNothingLeft(t *testing.T, dir string) {
	t.Helper()
	cfgs, _ := filepath.Glob(filepath.Join(dir, "*", "r*", "config.yaml"))
	if len(cfgs) == 0 {
		t.Fatalf("no replica directory under %s", dir)
	}
	listening, err := testnet.ListeningPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testnetPortRE.FindAllSubmatch(b, -1) {
			p, _ := strconv.Atoi(string(m[1]))
			if listening[p] {
				t.Errorf("port %d of %s still listens", p, filepath.Dir(c))
			}
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
			t.Errorf("process %s still runs: %q", e.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

// xborderOnPath returns the xborder program testscript.Main put on PATH
// (this test binary under the name xborder).
func xborderOnPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xborder")
	if err != nil {
		t.Fatalf("no xborder on PATH: %v", err)
	}
	return p
}

// TestTestnetUpInterrupted runs 'xborder testnet up' as a process, waits
// for its table, interrupts it, and checks that it stops every replica
// and leaves no port listening.
func TestTestnetUpInterrupted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fed")
	cmd := exec.Command(xborderOnPath(t), "testnet", "up", "--agencies", "2", "--replicas", "1", "--holdings", "200", "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	var all strings.Builder
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	deadline := time.After(3 * time.Minute)
	running := false
	for !running {
		select {
		case l, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("testnet up ended before it ran:\n%s\n%s", all.String(), stderr.String())
			}
			all.WriteString(l + "\n")
			running = strings.HasPrefix(l, "running; interrupt")
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("testnet up not running after 3 minutes:\n%s\n%s", all.String(), stderr.String())
		}
	}
	for _, want := range []string{"AGENCY  REPLICA", "GB", "TH", filepath.Join(dir, "GB", "tokens", "investigator.token"), "http://127.0.0.1:"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, all.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for l := range lines {
			all.WriteString(l + "\n")
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("testnet up after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("testnet up did not end within a minute of SIGINT")
	}
	if !strings.Contains(all.String(), "every replica stopped; no port left listening") {
		t.Errorf("testnet up did not say it stopped everything:\n%s", all.String())
	}
	checkNothingLeft(t, dir)
}

var finalLineRE = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)

// TestTestnetDemoFails runs 'xborder testnet demo --json' with a broken
// ledger export: its verification must FAIL, the exit code must be 1, and nothing
// may be left running.
func TestTestnetDemoFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fed")
	// One agency: the children are this race-enabled test binary, and
	// testnet's own tests run the whole scenario with a broken part.
	cmd := exec.Command(xborderOnPath(t), "testnet", "demo", "--agencies", "1", "--replicas", "1", "--holdings", "300",
		"--dir", dir, "--json", "--break", "export")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitInvalid {
		t.Fatalf("testnet demo with a broken part: %v; want exit 1\n%s", err, stderr.String())
	}
	var doc struct {
		Passed, Failed int
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	m := finalLineRE.FindStringSubmatch(stderr.String())
	if doc.Failed == 0 || doc.Passed == 0 || m == nil || m[1] != fmt.Sprint(doc.Passed) || m[2] != fmt.Sprint(doc.Failed) {
		t.Errorf("report: %d passed, %d failed; final line %q", doc.Passed, doc.Failed, m)
	}
	if !strings.Contains(stderr.String(), "FAIL  GB export verifies offline") {
		t.Errorf("no FAIL line for the broken check:\n%s", stderr.String())
	}
	checkNothingLeft(t, dir)
}

package testnet

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestDemoOutsideRepository runs the built program where an operator would
// put it, as `cd $TMPDIR && xborder testnet demo` does, scaled down: the
// working directory and the program have no examples/policy anywhere above
// them and the home directory is new, so the demo can only apply the policy
// built into the program. Every check must pass, and that policy must be
// examples/policy's files.
func TestDemoOutsideRepository(t *testing.T) {
	work, home := t.TempDir(), t.TempDir()
	for _, start := range []string{work, filepath.Dir(xborder)} {
		for d := start; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "examples", "policy")); err == nil {
				t.Fatalf("%s holds examples/policy: this test needs a working directory outside any xborder repository (set TMPDIR elsewhere)", d)
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, xborder, "testnet", "demo", "--agencies", "2", "--replicas", "1", "--holdings", "200", "--dir", "fed")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()

	fed := filepath.Join(work, "fed")
	matches, _ := filepath.Glob(filepath.Join(fed, "*", "r*", "listen.json"))
	var ports []int
	for _, m := range matches {
		p, perr := boundPorts(filepath.Dir(m))
		if perr != nil {
			t.Fatal(perr)
		}
		ports = append(ports, p...)
	}
	checkGone(t, processesNaming(fed), ports)

	if err != nil {
		t.Fatalf("cd %s && xborder testnet demo: %v\nstdout:\n%s\nstderr:\n%s", work, err, stdout.String(), stderr.String())
	}
	m := finalLine.FindStringSubmatch(stdout.String())
	if m == nil || m[2] != "0" {
		t.Fatalf("final line %q; want \"N passed, 0 failed\":\n%s", m, stdout.String())
	}
	if n, _ := strconv.Atoi(m[1]); n < 20 || len(ports) == 0 {
		t.Errorf("%s checks passed on %d ports; want the whole scenario", m[1], len(ports))
	}

	applied, _ := filepath.Glob(filepath.Join(home, ".cache", "xborder", "policy-*"))
	if len(applied) != 1 {
		t.Fatalf("policy directories in the new home's cache: %v; want one, written from the program", applied)
	}
	for _, name := range []string{"policy.cedar", "limits.yaml"} {
		got, err := os.ReadFile(filepath.Join(applied[0], name))
		if err != nil || !bytes.Equal(got, repoPolicy(t, name)) {
			t.Errorf("%s applied by the demo: %v; want examples/policy/%s", name, err, name)
		}
	}
}

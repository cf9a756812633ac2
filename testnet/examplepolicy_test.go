package testnet

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoPolicy reads a file of examples/policy from the repository, which
// the program's built-in copy must equal.
func repoPolicy(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "policy", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExamplePolicy checks that a Config with no PolicyDir gets the
// files of examples/policy, written from the program into the user's
// cache, and that a copy changed there is put back.
func TestExamplePolicy(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	dir, err := findPolicyDir()
	if err != nil {
		t.Fatalf("findPolicyDir: %v", err)
	}
	if filepath.Dir(dir) != filepath.Join(cache, "xborder") || !strings.HasPrefix(filepath.Base(dir), "policy-") {
		t.Errorf("findPolicyDir() = %s; want %s/xborder/policy-DIGEST", dir, cache)
	}
	for _, name := range []string{"policy.cedar", "limits.yaml"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, repoPolicy(t, name)) {
			t.Errorf("%s in %s: %v, %d bytes; want the %d bytes of examples/policy/%s", name, dir, err, len(got), len(repoPolicy(t, name)), name)
		}
	}

	// A changed copy is written again; the directory stays the same and
	// holds nothing else.
	if err := os.WriteFile(filepath.Join(dir, "limits.yaml"), []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := findPolicyDir()
	if err != nil || again != dir {
		t.Fatalf("findPolicyDir() = %s, %v; want %s", again, err, dir)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "limits.yaml")); !bytes.Equal(got, repoPolicy(t, "limits.yaml")) {
		t.Errorf("a changed limits.yaml in %s was not written again:\n%s", dir, got)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 2 {
		t.Errorf("%s holds %d entries (%v); want policy.cedar and limits.yaml only", dir, len(ents), err)
	}

	// With no cache directory, a new temporary one.
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	tmp, err := findPolicyDir()
	if err != nil {
		t.Fatalf("findPolicyDir with no cache directory: %v", err)
	}
	defer os.RemoveAll(tmp)
	if got, err := os.ReadFile(filepath.Join(tmp, "policy.cedar")); err != nil || !bytes.Equal(got, repoPolicy(t, "policy.cedar")) {
		t.Errorf("policy.cedar in %s (no cache directory): %v, %d bytes", tmp, err, len(got))
	}
}

// TestConfigPolicyDir checks that a PolicyDir without both files is
// refused before anything starts, naming what is missing.
func TestConfigPolicyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.cedar"), repoPolicy(t, "policy.cedar"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{Dir: "d", Binary: "b", PolicyDir: dir}
	if err := c.Validate(); !errors.Is(err, ErrNoPolicy) || !strings.Contains(err.Error(), "no file limits.yaml") {
		t.Errorf("Validate(PolicyDir without limits.yaml) = %v; want ErrNoPolicy naming limits.yaml", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "limits.yaml"), repoPolicy(t, "limits.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.PolicyDir != dir {
		t.Errorf("Validate(PolicyDir with both files) = %v, PolicyDir %s; want nil, %s", err, c.PolicyDir, dir)
	}
}

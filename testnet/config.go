package testnet

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	policyexample "github.com/xborder/xborder/examples/policy"
)

// Config says what federation Up starts. The zero value of every field
// but Dir and Binary is a sensible default.
type Config struct {
	// Dir holds everything of the federation: replica directories, logs,
	// holdings, queries, truth.json, exports. It must not exist or be
	// empty.
	Dir string
	// Binary is the xborder program whose verbs Up runs as child
	// processes; required.
	Binary string
	// Agencies is how many agencies run, 1 to 5 (the codes of Agencies
	// in order); 0 means 3.
	Agencies int
	// Replicas is how many replicas each agency runs (1, 3 or 5); 0
	// means 3.
	Replicas int
	// Holdings is how many synthetic rows each agency imports; 0 means
	// 20,000.
	Holdings int
	// Seed makes the holdings and the ground truth; 0 is a seed like any
	// other.
	Seed uint64
	// PolicyDir holds policy.cedar and limits.yaml, applied on every
	// agency. Empty means the example policy built into the program
	// (package policyexample: examples/policy as it was when the program
	// was built), written to a directory of the user's cache, so that the
	// testnet runs wherever the program is (findPolicyDir).
	PolicyDir string
	// Progress receives one line per step while the federation builds;
	// nil discards them.
	Progress io.Writer
	// StopGrace is how long a replica may take to stop after SIGTERM
	// before it gets SIGKILL; 0 means 15 seconds.
	StopGrace time.Duration
	// Break deliberately breaks one part, so that a test can see a check
	// fail. Only the checks of this package honour it: "" breaks nothing;
	// "export" flips one byte of the first agency's ledger export before
	// it is verified; "truth" makes the ground truth of the first agency's
	// phone queries expect a hit that no partner holds.
	Break string
	// OnUp, when set, is called once the federation is up, before the
	// scenario runs (tests use it to see the processes and ports).
	OnUp func(*Net)
}

// MaxAgencies is the most agencies a testnet runs: one per country of
// examples/policy/.
const MaxAgencies = 5

// Validate fills in defaults and checks the limits.
func (c *Config) Validate() error {
	if c.Agencies == 0 {
		c.Agencies = 3
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Holdings == 0 {
		c.Holdings = 20000
	}
	if c.StopGrace == 0 {
		c.StopGrace = 15 * time.Second
	}
	switch {
	case c.Dir == "":
		return errors.New("testnet: no directory given")
	case c.Binary == "":
		return errors.New("testnet: no xborder binary given")
	case c.Agencies < 1 || c.Agencies > MaxAgencies:
		return fmt.Errorf("testnet: %d agencies: %w", c.Agencies, ErrTooManyAgencies)
	case c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5:
		return fmt.Errorf("testnet: %d replicas: %w", c.Replicas, ErrReplicas)
	case c.Holdings < 10:
		return fmt.Errorf("testnet: %d holdings: at least 10 rows per agency", c.Holdings)
	case c.Break != "" && c.Break != "export" && c.Break != "truth":
		return fmt.Errorf("testnet: unknown part to break %q", c.Break)
	}
	if c.PolicyDir != "" {
		return checkPolicyDir(c.PolicyDir)
	}
	return nil
}

// Errors of Validate.
var (
	// ErrTooManyAgencies: the agencies asked for are fewer than 1 or more
	// than MaxAgencies (examples/policy/ knows five countries).
	ErrTooManyAgencies = errors.New("a testnet runs 1 to 5 agencies (GB, TH, DE, NL, FR)")
	// ErrReplicas: an agency runs 1, 3 or 5 replicas.
	ErrReplicas = errors.New("an agency runs 1, 3 or 5 replicas")
	// ErrNoPolicy: Config.PolicyDir lacks policy.cedar or limits.yaml;
	// give a directory that holds both, or none for the example policy
	// built into the program.
	ErrNoPolicy = errors.New("a policy directory holds policy.cedar and limits.yaml")
)

// checkPolicyDir checks that dir holds both files of a policy.
func checkPolicyDir(dir string) error {
	for _, name := range []string{policyexample.PolicyFile, policyexample.LimitsFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("testnet: policy directory %s: no file %s: %w", dir, name, ErrNoPolicy)
		}
	}
	return nil
}

// findPolicyDir returns the directory of the policy a Config with no
// PolicyDir applies. It writes the example policy built into the program
// (policyexample.FS) to a directory of the user's cache named by the
// files' digest, $XDG_CACHE_HOME/xborder/policy-DIGEST (or
// ~/.cache/xborder/...), and returns it; the files the testnet applies are
// then files an operator can read and copy. A file of that directory that
// differs from the built-in one is written again, so the directory always
// holds what the program carries. With no cache directory (no $HOME, no
// $XDG_CACHE_HOME) it writes a new temporary directory, which it leaves
// behind.
func findPolicyDir() (string, error) {
	src := policyexample.FS()
	names := []string{policyexample.PolicyFile, policyexample.LimitsFile}
	body := make(map[string][]byte, len(names))
	h := sha256.New()
	for _, name := range names {
		b, err := fs.ReadFile(src, name)
		if err != nil {
			return "", fmt.Errorf("testnet: built-in policy: %w", err)
		}
		body[name] = b
		d := sha256.Sum256(b)
		fmt.Fprintf(h, "%s %x\n", name, d)
	}
	var dir string
	if cache, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(cache, "xborder", fmt.Sprintf("policy-%x", h.Sum(nil)[:8]))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("testnet: write the built-in policy: %w (give a policy directory of your own instead)", err)
		}
	} else if dir, err = os.MkdirTemp("", "xborder-policy-"); err != nil {
		return "", fmt.Errorf("testnet: write the built-in policy: %w (give a policy directory of your own instead)", err)
	}
	for _, name := range names {
		if err := writeIfChanged(filepath.Join(dir, name), body[name]); err != nil {
			return "", fmt.Errorf("testnet: write the built-in policy: %w (give a policy directory of your own instead)", err)
		}
	}
	return dir, nil
}

// writeIfChanged makes path hold b: left alone when it does, else written
// to a temporary file beside it and renamed over it, so that a reader (a
// testnet running at the same time) sees the old file or the new one.
func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

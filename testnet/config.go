package testnet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
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
	// agency; empty means examples/policy of the repository that holds the
	// working directory (searched upwards).
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
	return nil
}

// Errors of Validate.
var (
	// ErrTooManyAgencies: the agencies asked for are fewer than 1 or more
	// than MaxAgencies (examples/policy/ knows five countries).
	ErrTooManyAgencies = errors.New("a testnet runs 1 to 5 agencies (GB, TH, DE, NL, FR)")
	// ErrReplicas: an agency runs 1, 3 or 5 replicas.
	ErrReplicas = errors.New("an agency runs 1, 3 or 5 replicas")
	// ErrNoPolicy: Config.PolicyDir is empty and no examples/policy is in
	// the working directory or a parent; run inside the repository or set
	// PolicyDir.
	ErrNoPolicy = errors.New("no examples/policy/policy.cedar found")
)

// findPolicyDir returns examples/policy of the repository around the
// working directory.
func findPolicyDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find examples/policy: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "examples", "policy")
		if _, err := os.Stat(filepath.Join(p, "policy.cedar")); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find examples/policy: not in %s or any parent: %w", wd, ErrNoPolicy)
		}
	}
}

package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
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

// Net is a running federation. Close stops it.
type Net struct {
	cfg      Config
	Truth    *Truth
	Agencies []*AgencyNode
	// Policy is the version of the policy in force on every agency.
	Policy string

	mu    sync.Mutex
	procs []*proc
	ports []int
}

// Roles of the users Up adds to every agency, each with a token file.
var userRoles = []string{"investigator", "approver", "auditor", "steward"}

// AgencyNode is one agency of a running federation.
type AgencyNode struct {
	Agency
	Dir         string // DIR/CC: replica directories r1..rN, tokens/
	Fingerprint string // of its card
	Card        string // path of its card file
	Replicas    []*Replica
	// Tokens maps a role (investigator, approver, auditor, steward,
	// admin) to the path of its token file (mode 0600).
	Tokens map[string]string
}

// Replica is one replica process of an agency.
type Replica struct {
	ID     string
	Dir    string
	API    string // base URL of its HTTP API
	PeerID string
	Ports  []int // raft, p2p and API ports
	Log    string
	proc   *proc
}

// PID returns the replica's process ID, or 0 when it was never started.
func (r *Replica) PID() int {
	if r.proc == nil {
		return 0
	}
	return r.proc.PID()
}

// Running reports whether the replica's process runs.
func (r *Replica) Running() bool { return r.proc != nil && !r.proc.exited() }

// Kill ends the replica with SIGKILL, as a crash would.
func (r *Replica) Kill() {
	if r.proc != nil {
		r.proc.kill()
	}
}

func (n *Net) progress(format string, args ...any) {
	if n.cfg.Progress != nil {
		fmt.Fprintf(n.cfg.Progress, format+"\n", args...)
	}
}

// verb runs a short xborder verb with the default timeout.
func (n *Net) verb(ctx context.Context, args ...string) (string, error) {
	return runVerb(ctx, n.cfg.Binary, 2*time.Minute, args...)
}

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

// Up builds a federation as an operator would, with the xborder verbs as
// child processes: per agency init, node run, replica add and node run
// --join, users, policy apply; then cards and partner pins between every
// pair of agencies, and the import of the synthetic holdings. On error it
// stops what it started. The children run until Close, whatever happens to
// ctx, which bounds only the building.
func Up(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PolicyDir == "" {
		p, err := findPolicyDir()
		if err != nil {
			return nil, err
		}
		cfg.PolicyDir = p
	}
	if ents, err := os.ReadDir(cfg.Dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("testnet: directory %s is not empty: %w", cfg.Dir, os.ErrExist)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	cfg.Dir = abs
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	n := &Net{cfg: cfg}
	if err := n.build(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Net) build(ctx context.Context) error {
	cfg := n.cfg
	n.progress("generating %d holdings per agency for %d agencies (seed %d)", cfg.Holdings, cfg.Agencies, cfg.Seed)
	t, err := Generate(cfg.Dir, Agencies[:cfg.Agencies], cfg.Holdings, cfg.Seed)
	if err != nil {
		return err
	}
	n.Truth = t
	for _, a := range Agencies[:cfg.Agencies] {
		n.Agencies = append(n.Agencies, &AgencyNode{Agency: a, Dir: filepath.Join(cfg.Dir, a.Code), Tokens: map[string]string{}})
	}
	// Agencies build in parallel: each is independent until pinning.
	if err := n.each(func(a *AgencyNode) error { return n.buildAgency(ctx, a) }); err != nil {
		return err
	}
	if err := n.pin(ctx); err != nil {
		return err
	}
	return n.importHoldings(ctx)
}

// each runs f on every agency concurrently and returns the first error.
func (n *Net) each(f func(*AgencyNode) error) error {
	errs := make([]error, len(n.Agencies))
	var wg sync.WaitGroup
	for i, a := range n.Agencies {
		wg.Go(func() { errs[i] = f(a) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startReplica starts `node run` for r with extra arguments and waits
// until it is ready.
func (n *Net) startReplica(ctx context.Context, a *AgencyNode, r *Replica, extra ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	r.Log = filepath.Join(n.cfg.Dir, "logs", a.Code+"-"+r.ID+".log")
	args := append([]string{"node", "run", "--dir", r.Dir}, extra...)
	p, err := startProc(a.Code+"/"+r.ID, n.cfg.Binary, r.Log, args...)
	if err != nil {
		return err
	}
	r.proc = p
	n.procs = append(n.procs, p)
	return nil
}

// waitReady waits for a replica to answer ready, and reads its API URL,
// peer ID and ports.
func (n *Net) waitReady(ctx context.Context, a *AgencyNode, r *Replica) error {
	out, err := n.verb(ctx, "node", "status", "--dir", r.Dir, "--wait", "90s")
	if err != nil {
		if r.proc != nil && r.proc.exited() {
			return fmt.Errorf("replica %s/%s exited (log %s): %w", a.Code, r.ID, r.Log, err)
		}
		return fmt.Errorf("replica %s/%s not ready (log %s): %w", a.Code, r.ID, r.Log, err)
	}
	var st struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return fmt.Errorf("replica %s/%s: read node status: %w", a.Code, r.ID, err)
	}
	r.PeerID = st.PeerID
	u, err := os.ReadFile(filepath.Join(r.Dir, "api.url"))
	if err != nil {
		return fmt.Errorf("replica %s/%s: %w", a.Code, r.ID, err)
	}
	r.API = strings.TrimSpace(string(u))
	ports, err := boundPorts(r.Dir)
	if err != nil {
		return err
	}
	if len(ports) != 3 {
		return fmt.Errorf("replica %s/%s: %d of its raft, p2p and API ports recorded in listen.json", a.Code, r.ID, len(ports))
	}
	r.Ports = ports
	n.mu.Lock()
	n.ports = append(n.ports, ports...)
	n.mu.Unlock()
	return nil
}

func (n *Net) buildAgency(ctx context.Context, a *AgencyNode) error {
	r1 := &Replica{ID: "r1", Dir: filepath.Join(a.Dir, "r1")}
	if _, err := n.verb(ctx, "init", "--agency", a.Code, "--name", a.Name, "--dir", r1.Dir); err != nil {
		return fmt.Errorf("agency %s: %w", a.Code, err)
	}
	a.Replicas = append(a.Replicas, r1)
	a.Tokens["admin"] = filepath.Join(r1.Dir, "admin.token")
	if err := n.startReplica(ctx, a, r1); err != nil {
		return err
	}
	if err := n.waitReady(ctx, a, r1); err != nil {
		return err
	}
	n.progress("%s: replica r1 ready (API %s)", a.Code, r1.API)
	for i := 2; i <= n.cfg.Replicas; i++ {
		r := &Replica{ID: fmt.Sprintf("r%d", i), Dir: filepath.Join(a.Dir, fmt.Sprintf("r%d", i))}
		bundle := filepath.Join(a.Dir, r.ID+".bundle")
		if _, err := n.verb(ctx, "replica", "add", r.ID, "--host", "127.0.0.1", "--out", bundle, "--dir", r1.Dir); err != nil {
			return fmt.Errorf("agency %s: %w", a.Code, err)
		}
		a.Replicas = append(a.Replicas, r)
		if err := n.startReplica(ctx, a, r, "--join", bundle); err != nil {
			return err
		}
		if err := n.waitReady(ctx, a, r); err != nil {
			return err
		}
		// The bundle holds the agency key: delete it once the replica runs.
		if err := os.Remove(bundle); err != nil {
			return fmt.Errorf("agency %s: %w", a.Code, err)
		}
		n.progress("%s: replica %s joined (API %s)", a.Code, r.ID, r.API)
	}
	tokDir := filepath.Join(a.Dir, "tokens")
	if err := os.MkdirAll(tokDir, 0o700); err != nil {
		return fmt.Errorf("agency %s: %w", a.Code, err)
	}
	for _, role := range userRoles {
		f := filepath.Join(tokDir, role+".token")
		if _, err := n.verb(ctx, "user", "add", role, "--role", role, "--out", f, "--dir", r1.Dir); err != nil {
			return fmt.Errorf("agency %s: %w", a.Code, err)
		}
		a.Tokens[role] = f
	}
	out, err := n.verb(ctx, "policy", "apply", "--policy", filepath.Join(n.cfg.PolicyDir, "policy.cedar"),
		"--limits", filepath.Join(n.cfg.PolicyDir, "limits.yaml"), "--dir", r1.Dir)
	if err != nil {
		return fmt.Errorf("agency %s: %w", a.Code, err)
	}
	var version string
	if f := strings.Fields(out); len(f) > 1 {
		version = f[1]
		n.mu.Lock()
		n.Policy = version
		n.mu.Unlock()
	}
	n.progress("%s: users %s added, policy %s in force", a.Code, strings.Join(userRoles, ", "), short(version))
	return nil
}

func short(v string) string {
	if len(v) > 19 {
		return v[:19] + "…"
	}
	return v
}

var fingerprintRE = regexp.MustCompile(`(?m)^fingerprint: (\S+)`)

// pin makes every agency's card, once it lists all its replicas, and pins
// it on every other agency with the fingerprint `card` printed: the
// out-of-band check an operator does on the phone.
func (n *Net) pin(ctx context.Context) error {
	cards := filepath.Join(n.cfg.Dir, "cards")
	if err := os.MkdirAll(cards, 0o755); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	err := n.each(func(a *AgencyNode) error {
		a.Card = filepath.Join(cards, a.Code+".card")
		deadline := time.Now().Add(60 * time.Second)
		for {
			_ = os.Remove(a.Card)
			out, err := n.verb(ctx, "card", "--dir", a.Replicas[0].Dir, "--out", a.Card)
			if err != nil {
				return fmt.Errorf("agency %s: %w", a.Code, err)
			}
			m := fingerprintRE.FindStringSubmatch(out)
			if m == nil {
				return fmt.Errorf("agency %s: card printed no fingerprint", a.Code)
			}
			a.Fingerprint = m[1]
			var c struct {
				Replicas []json.RawMessage `json:"replicas"`
			}
			b, err := os.ReadFile(a.Card)
			if err != nil {
				return fmt.Errorf("agency %s: %w", a.Code, err)
			}
			if err := json.Unmarshal(b, &c); err != nil {
				return fmt.Errorf("agency %s: read card: %w", a.Code, err)
			}
			if len(c.Replicas) == len(a.Replicas) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("agency %s: card lists %d replicas of %d after a minute", a.Code, len(c.Replicas), len(a.Replicas))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	if err != nil {
		return err
	}
	return n.each(func(a *AgencyNode) error {
		for _, p := range n.Agencies {
			if p == a {
				continue
			}
			if _, err := n.verb(ctx, "partner", "add", p.Card, "--fingerprint", p.Fingerprint, "--dir", a.Replicas[0].Dir); err != nil {
				return fmt.Errorf("agency %s pins %s: %w", a.Code, p.Code, err)
			}
		}
		n.progress("%s: pinned %d partners (fingerprints checked)", a.Code, len(n.Agencies)-1)
		return nil
	})
}

// HasVerb reports whether the xborder binary knows a verb (for example
// "data import").
func (n *Net) HasVerb(ctx context.Context, verb ...string) bool {
	_, code, _, err := runVerbCode(ctx, n.cfg.Binary, 30*time.Second, append(verb, "--help")...)
	return err == nil && code == 0
}

// importAttempts is how many times a steward runs an import that found the
// node unavailable.
const importAttempts = 4

// firstErrLine returns the first "xborder: error:" line of a verb's stderr.
func firstErrLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "xborder: error: ") {
			return strings.TrimPrefix(l, "xborder: error: ")
		}
	}
	return strings.TrimSpace(stderr)
}

// importHoldings imports every agency's holdings as its steward would.
func (n *Net) importHoldings(ctx context.Context) error {
	if !n.HasVerb(ctx, "data", "import") {
		n.progress("holdings: this xborder has no 'data import' verb; the agencies hold nothing")
		return nil
	}
	return n.each(func(a *AgencyNode) error {
		total := 0
		for _, r := range n.Truth.Rows {
			if r.Agency != a.Code {
				continue
			}
			// A steward whose import meets an unavailable node (exit 4: a
			// batch not committed after the CLI's retries, on a busy
			// machine) runs it again: only committed imports are held, so
			// the run again stores the failed run's rows (or takes over its
			// stored batches) and they reach the set.
			for attempt := 1; ; attempt++ {
				_, err := runVerb(ctx, n.cfg.Binary, 30*time.Minute, "data", "import", "--kind", r.Kind, "--region", a.Code,
					"--api", a.Replicas[0].API, "--token-file", a.Tokens["steward"], r.File)
				var ve *VerbError
				if err == nil {
					break
				}
				if !errors.As(err, &ve) || ve.Code != 4 || attempt == importAttempts {
					return fmt.Errorf("agency %s imports %s: %w", a.Code, r.Kind, err)
				}
				n.progress("%s: import of %s unavailable (%s); running it again", a.Code, r.Kind, firstErrLine(ve.Stderr))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(attempt) * 2 * time.Second):
				}
			}
			total += r.Rows
			if r.Rows >= 100000 {
				n.progress("%s: imported %d %s rows", a.Code, r.Rows, r.Kind)
			}
		}
		n.progress("%s: imported %d rows of %d kinds", a.Code, total, len(kindShares))
		return nil
	})
}

// Client returns an API client of agency a's replica i with the token of
// role.
func (a *AgencyNode) Client(i int, role string) (*httpapi.Client, error) {
	tok, err := os.ReadFile(a.Tokens[role])
	if err != nil {
		return nil, fmt.Errorf("token of %s %s: %w", a.Code, role, err)
	}
	return &httpapi.Client{BaseURL: a.Replicas[i].API, Token: strings.TrimSpace(string(tok))}, nil
}

// Agency returns the running agency with code, or nil.
func (n *Net) Agency(code string) *AgencyNode {
	for _, a := range n.Agencies {
		if a.Code == code {
			return a
		}
	}
	return nil
}

// Dir returns the federation's directory.
func (n *Net) Dir() string { return n.cfg.Dir }

// Binary returns the xborder program the federation runs.
func (n *Net) Binary() string { return n.cfg.Binary }

// PIDs returns the process IDs of every child started so far.
func (n *Net) PIDs() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []int
	for _, p := range n.procs {
		out = append(out, p.PID())
	}
	return out
}

// Ports returns every port the replicas listened on.
func (n *Net) Ports() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int(nil), n.ports...)
}

// Close stops every replica (SIGTERM to its process group, SIGKILL after
// StopGrace), then checks that none of their processes and none of their
// ports remain. It is safe to call more than once.
func (n *Net) Close() error {
	n.mu.Lock()
	procs := append([]*proc(nil), n.procs...)
	ports := append([]int(nil), n.ports...)
	n.mu.Unlock()
	var wg sync.WaitGroup
	var killed []string
	var kmu sync.Mutex
	for _, p := range procs {
		wg.Go(func() {
			if p.stop(n.cfg.StopGrace) {
				kmu.Lock()
				killed = append(killed, p.name)
				kmu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(killed) > 0 {
		n.progress("stopped with SIGKILL after %s: %s", n.cfg.StopGrace, strings.Join(killed, ", "))
	}
	var errs []error
	for _, p := range procs {
		if processAlive(p.PID()) {
			errs = append(errs, fmt.Errorf("testnet: process %d (%s) still runs", p.PID(), p.name))
		}
	}
	// A socket may take a moment to leave the table after its process.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, err := stillListening(ports)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("testnet: ports %v still listening after every replica stopped", left))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// PrintTable writes the agencies, replicas, peer IDs, API URLs and token
// file paths (never tokens) of the federation.
func (n *Net) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENCY\tREPLICA\tPID\tPEER ID\tAPI")
	for _, a := range n.Agencies {
		for _, r := range a.Replicas {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", a.Code, r.ID, r.PID(), r.PeerID, r.API)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENCY\tFINGERPRINT\tROLE\tTOKEN FILE")
	for _, a := range n.Agencies {
		for _, role := range append([]string{"admin"}, userRoles...) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Code, a.Fingerprint, role, a.Tokens[role])
		}
	}
	tw.Flush()
}

// PrintTry writes a few commands to try against the running federation.
func (n *Net) PrintTry(w io.Writer) {
	a := n.Agencies[0]
	r := a.Replicas[0]
	fmt.Fprintf(w, "Try (the ground truth is %s):\n", filepath.Join(n.cfg.Dir, "truth.json"))
	fmt.Fprintf(w, "  xborder partner list --api %s --token-file %s\n", r.API, a.Tokens["admin"])
	fmt.Fprintf(w, "  xborder replica list --api %s --token-file %s\n", r.API, a.Tokens["admin"])
	if len(n.Agencies) > 1 {
		fmt.Fprintf(w, "  xborder query --kind phone --case DEMO-1 --basis 'demo' --offence thb --api %s --token-file %s %s\n",
			r.API, a.Tokens["investigator"], filepath.Join(n.cfg.Dir, "queries", a.Code, "phone.txt"))
	}
	fmt.Fprintf(w, "  curl -s %s/metrics | grep xborder_raft_state\n", r.API)
	fmt.Fprintf(w, "  xborder node status --api %s --token-file %s\n", r.API, a.Tokens["admin"])
	fmt.Fprintf(w, "Logs: %s\n", filepath.Join(n.cfg.Dir, "logs"))
}

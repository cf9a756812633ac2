package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
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
var userRoles = []string{"investigator", "approver", "auditor", "steward", "liaison"}

// AgencyNode is one agency of a running federation.
type AgencyNode struct {
	Agency
	Dir         string // DIR/CC: replica directories r1..rN, tokens/
	Fingerprint string // of its card
	Card        string // path of its card file
	Replicas    []*Replica
	// Tokens maps a role (investigator, approver, auditor, steward,
	// liaison, admin) to the path of its token file (mode 0600).
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
	// mu guards proc and API, which a restart (testnet chaos) changes
	// while others read them.
	mu sync.Mutex
}

// current returns the replica's process, or nil.
func (r *Replica) current() *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// apiURL returns the base URL of the replica's API as its last start
// bound it.
func (r *Replica) apiURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.API
}

// PID returns the replica's process ID, or 0 when it was never started.
func (r *Replica) PID() int {
	p := r.current()
	if p == nil {
		return 0
	}
	return p.PID()
}

// Running reports whether the replica's process runs.
func (r *Replica) Running() bool { p := r.current(); return p != nil && !p.exited() }

// Kill ends the replica with SIGKILL, as a crash would.
func (r *Replica) Kill() {
	if p := r.current(); p != nil {
		p.kill()
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

// Client returns an API client of agency a's replica i with the token of
// role.
func (a *AgencyNode) Client(i int, role string) (*httpapi.Client, error) {
	tok, err := os.ReadFile(a.Tokens[role])
	if err != nil {
		return nil, fmt.Errorf("token of %s %s: %w", a.Code, role, err)
	}
	return &httpapi.Client{BaseURL: a.Replicas[i].apiURL(), Token: strings.TrimSpace(string(tok))}, nil
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

// Signal sends sig to the replica's process group (SIGSTOP and SIGCONT
// pause and resume it).
func (r *Replica) Signal(sig syscall.Signal) error {
	p := r.current()
	if p == nil || p.exited() {
		return fmt.Errorf("replica %s is not running", r.ID)
	}
	return syscall.Kill(-p.PID(), sig)
}

// Restart starts a replica that ended (killed or stopped) again from its
// directory, on the ports it bound before, and waits until it is ready.
func (n *Net) Restart(ctx context.Context, a *AgencyNode, r *Replica) error {
	if r.Running() {
		return fmt.Errorf("replica %s/%s still runs", a.Code, r.ID)
	}
	if err := n.startReplica(ctx, a, r); err != nil {
		return err
	}
	return n.waitReady(ctx, a, r)
}

// Stop stops one replica as Close does (SIGTERM, SIGKILL after
// StopGrace).
func (n *Net) Stop(r *Replica) {
	if p := r.current(); p != nil {
		p.stop(n.cfg.StopGrace)
	}
}

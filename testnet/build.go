package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

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
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	n.procs = append(n.procs, p)
	return nil
}

// waitReady waits for a replica to answer ready, and reads its API URL,
// peer ID and ports.
func (n *Net) waitReady(ctx context.Context, a *AgencyNode, r *Replica) error {
	out, err := n.verb(ctx, "node", "status", "--dir", r.Dir, "--wait", "90s")
	if err != nil {
		if p := r.current(); p != nil && p.exited() {
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
	r.mu.Lock()
	r.API = strings.TrimSpace(string(u))
	r.mu.Unlock()
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

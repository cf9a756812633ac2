package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xborder/xborder/internal/httpapi"
)

// limits is what the demo reads of limits.yaml: per partner and kind, the
// largest query and the daily budget.
type limits struct {
	Partners map[string]map[string]struct {
		MaxQuery    int `yaml:"max_query"`
		DailyBudget int `yaml:"daily_budget"`
	} `yaml:"partners"`
	Approval struct {
		SizeOver int      `yaml:"size_over"`
		Kinds    []string `yaml:"kinds"`
	} `yaml:"approval"`
}

func readLimits(dir string) (*limits, error) {
	b, err := os.ReadFile(filepath.Join(dir, "limits.yaml"))
	if err != nil {
		return nil, fmt.Errorf("read limits: %w", err)
	}
	var l limits
	if err := yaml.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("read limits: %w", err)
	}
	return &l, nil
}

// allowed reports whether querier may ask partner about kind under the
// example policy: both agencies' limits list the kind for the other.
func (l *limits) allowed(querier, partner, kind string) bool {
	_, a := l.Partners[querier][kind]
	_, b := l.Partners[partner][kind]
	return a && b
}

// demo is one run of the scenario.
type demo struct {
	cfg Config
	rep *Report
	net *Net
	lim *limits
	// canQuery: the binary has the query verb.
	canQuery bool
}

// Demo builds a federation with cfg, runs the scenario that docs/
// testnet.md describes, recording every check in rep, stops the federation
// and checks that nothing of it is left. It returns an error only when cfg
// is invalid; everything else is a failed check.
func Demo(ctx context.Context, cfg Config, rep *Report) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.PolicyDir == "" {
		p, err := findPolicyDir()
		if err != nil {
			return err
		}
		cfg.PolicyDir = p
	}
	lim, err := readLimits(cfg.PolicyDir)
	if err != nil {
		return err
	}
	d := &demo{cfg: cfg, rep: rep, lim: lim}
	defer rep.Finish()

	rep.Step(fmt.Sprintf("Build a federation of %d agencies with %d replicas each", cfg.Agencies, cfg.Replicas),
		"Every agency is built as an operator would: init, replica add + node run --join, users, policy apply, cards, partner add, data import.")
	start := time.Now()
	n, err := Up(ctx, cfg)
	if !rep.Check(err == nil, "federation up", "%s", errText(err, fmt.Sprintf("%d replica processes in %s (directory %s)",
		cfg.Agencies*cfg.Replicas, time.Since(start).Round(time.Second), cfg.Dir))) {
		return nil
	}
	d.net = n
	if cfg.OnUp != nil {
		cfg.OnUp(n)
	}
	d.canQuery = n.HasVerb(ctx, "query")
	func() {
		defer func() {
			// A panic in a step must not leave replicas running.
			if p := recover(); p != nil {
				rep.Check(false, "scenario", "stopped by an internal error: %v", p)
			}
		}()
		d.run(ctx)
	}()

	rep.Step("Resources", "Peak resident memory of each replica process (VmHWM from /proc), before it stops.")
	for _, a := range n.Agencies {
		var parts []string
		for _, r := range a.Replicas {
			if r.Running() {
				parts = append(parts, fmt.Sprintf("%s %s", r.ID, peakRSS(r.PID())))
			}
		}
		rep.Note("%s: %s", a.Code, strings.Join(parts, ", "))
	}

	rep.Step("Stop the federation", "Every replica gets SIGTERM (SIGKILL after a bound); no process and no listening port may remain.")
	pids, ports := n.PIDs(), n.Ports()
	err = n.Close()
	rep.Check(err == nil, "nothing left running or listening", "%s",
		errText(err, fmt.Sprintf("%d processes ended, %d ports closed", len(pids), len(ports))))
	return nil
}

// peakRSS returns the peak resident set size of a process, as /proc
// reports it.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int
			if _, err := fmt.Sscan(strings.TrimSpace(v), &kb); err == nil {
				return fmt.Sprintf("%d MiB", kb/1024)
			}
		}
	}
	return "unknown"
}

func errText(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

func (d *demo) run(ctx context.Context) {
	d.checkFederation(ctx)
	d.checkHoldings(ctx)
	if len(d.net.Agencies) > 1 {
		d.queries(ctx)
		d.spellings(ctx)
		d.overBudget(ctx)
		d.approval(ctx)
		d.victims(ctx)
		d.followups(ctx)
		d.leaderKill(ctx)
	} else {
		d.rep.Step("Matching between agencies", "")
		d.rep.Note("one agency has no partner: the matching steps need --agencies 2 or more")
	}
	d.exports(ctx)
	d.witnessing(ctx)
}

// client returns an API client of a running replica of a, with the token
// of role.
func (d *demo) client(a *AgencyNode, role string) (*httpapi.Client, error) {
	for i, r := range a.Replicas {
		if r.Running() {
			return a.Client(i, role)
		}
	}
	return nil, fmt.Errorf("agency %s: no replica runs", a.Code)
}

// api returns the API URL of a running replica of a.
func (d *demo) api(a *AgencyNode) string {
	for _, r := range a.Replicas {
		if r.Running() {
			return r.API
		}
	}
	return a.Replicas[0].API
}

// permanentError is an error that waiting does not mend: poll returns it
// at once.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// poll calls f until it returns nil or a permanent error, or within is
// over; it returns f's last error.
func poll(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		var p permanentError
		if err == nil || time.Now().After(deadline) || errors.As(err, &p) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

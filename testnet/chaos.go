package testnet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ChaosConfig says what `testnet chaos` runs: a federation (Config; its
// Seed also draws the nemesis's schedule), for Duration.
type ChaosConfig struct {
	Config
	// Duration is how long the workload and the nemesis run; 0 means 3
	// minutes.
	Duration time.Duration
	// Faults are the fault kinds the nemesis draws from (FaultKinds);
	// empty means all of them, and "none" alone none.
	Faults []string
}

// ErrFaultKind: ChaosConfig.Faults names a kind that is not one of
// FaultKinds.
var ErrFaultKind = errors.New("not a fault kind (" + strings.Join(FaultKinds, ", ") + ", or none)")

// ChaosResult is a run's record beside its report: the schedule as
// planned and played, and every operation.
type ChaosResult struct {
	Seed     uint64         `json:"seed"`
	Schedule []*Fault       `json:"schedule"`
	Ops      []*Op          `json:"ops"`
	Faults   map[string]int `json:"faults"`   // injected, per kind
	Outcomes map[string]int `json:"outcomes"` // operations, per kind and outcome
}

// Chaos builds a federation, routes every Raft link between replicas and
// every libp2p link between agencies through a proxy of its own, runs the
// workload and the nemesis for cfg.Duration, heals everything, checks the
// invariants (each a check of rep) and stops the federation. Cancelling
// ctx (an interrupt) ends the run early; the federation is stopped all the
// same and nothing is left running or listening.
func Chaos(ctx context.Context, cfg ChaosConfig, rep *Report) (*ChaosResult, error) {
	if cfg.Duration == 0 {
		cfg.Duration = 3 * time.Minute
	}
	say := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", args...)
		}
	}
	codes := []string{}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, a := range Agencies[:cfg.Agencies] {
		codes = append(codes, a.Code)
	}
	kinds := FaultKinds
	if len(cfg.Faults) > 0 {
		kinds = nil
		for _, k := range cfg.Faults {
			switch {
			case k == "none":
			case slices.Contains(FaultKinds, k):
				kinds = append(kinds, k)
			default:
				return nil, fmt.Errorf("testnet: fault kind %q: %w", k, ErrFaultKind)
			}
		}
	}
	res := &ChaosResult{Seed: cfg.Seed, Schedule: Schedule(cfg.Seed, kinds, codes, cfg.Replicas, cfg.Duration),
		Faults: map[string]int{}, Outcomes: map[string]int{}}
	rep.Step("Schedule", fmt.Sprintf("seed %d: the nemesis's faults, one at a time (replay with --seed %d)", cfg.Seed, cfg.Seed))
	for _, f := range res.Schedule {
		rep.Note("%s", f)
	}
	if !ChaosBuild {
		rep.Note("built without the chaos tag: skipping clock faults (the clock offset is compiled in only with it); run `go run -tags chaos ./cmd/xborder testnet chaos` for all")
	}

	rep.Step("Build the federation", "")
	n, err := Up(ctx, cfg.Config)
	if !rep.Check(err == nil, "federation up", "%s", errText(err, fmt.Sprintf("%d agencies × %d replicas", cfg.Agencies, cfg.Replicas))) {
		return res, err
	}
	px := newProxies()
	defer func() {
		// Whatever happened: every paused replica continues, every proxy
		// closes, every replica stops.
		for _, a := range n.Agencies {
			for _, r := range a.Replicas {
				_ = r.Signal(syscall.SIGCONT)
			}
		}
		cerr := errors.Join(px.close(), n.Close())
		if cerr != nil {
			rep.Step("Stop", "")
			rep.Check(false, "nothing left running or listening", "%v", cerr)
		}
	}()
	if err := px.wire(n); err != nil {
		return res, err
	}
	if err := restartAll(ctx, n); err != nil {
		return res, err
	}
	rep.Check(true, "every link through a proxy", "%d links (Raft within agencies, libp2p between them); replicas restarted to dial them (routes.json)", len(px.links))

	if cfg.OnUp != nil {
		cfg.OnUp(n)
	}

	rep.Step("Workload and nemesis", fmt.Sprintf("for %s: queries of every partner, approvals, card re-pins, imports and removals, ledger reads and exports, policy applies and key rotations; faults as scheduled", cfg.Duration))
	hist := &history{start: time.Now()}
	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	w := &workload{net: n, hist: hist, seed: cfg.Seed, kinds: []string{"phone", "email"}, hard: ctx}
	nm := &nemesis{net: n, px: px, hist: hist, network: true, clock: ChaosBuild, log: say}
	initial := map[string]int{}
	for _, a := range n.Agencies {
		if ds := digestsOf(ctx, a); len(ds) > 0 {
			initial[a.Code], _ = strconv.Atoi(ds[0][stewardKind+" rows"])
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { w.run(runCtx) })
	nm.run(runCtx, res.Schedule)
	<-runCtx.Done() // the schedule may end before the run
	wg.Wait()
	res.Ops = hist.all()
	for _, f := range res.Schedule {
		switch {
		case f.Start > 0:
			res.Faults[f.Kind]++
			rep.Note("%s–%s  %s %s/%s%s; operations meanwhile: %s", fmtMs(f.Start), fmtMs(f.Healed), f.Kind, f.Agency, f.Target,
				noteOf(f.Note), during(res.Ops, f.Start, f.Healed))
		case f.Skipped != "":
			res.Faults["skipped "+f.Kind]++
		}
	}
	parts, reasons := map[string]int{}, map[string]int{}
	for _, op := range res.Ops {
		res.Outcomes[op.Kind+" "+op.Outcome]++
		for _, p := range op.Partners {
			parts[p.Outcome]++
			if p.Reason != "" {
				reasons[reasonClass(p.Reason)]++
			}
		}
	}
	rep.Note("faults injected: %s", fmtCounts(res.Faults))
	rep.Note("operations: %s", fmtCounts(res.Outcomes))
	rep.Note("query parts (one per partner asked): %s", fmtCounts(parts))
	rep.Note("reasons of the parts not answered: %s", fmtCounts(reasons))
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	rep.Step("Heal", "every link open, every replica running; wait for each agency to have a leader and every replica to agree")
	if err := px.heal(); err != nil {
		rep.Check(false, "every link open", "%v", err)
	}
	final, err := settle(ctx, n, hist)
	rep.Check(err == nil, "healed federation settles", "%s", errText(err, "every replica ready, the same ledger size"))

	rep.Step("Probe", "each partner asks each agency about rows its steward removed and rows it still holds")
	probes := w.probeRemovals(ctx)

	rep.Step("Check", "the invariants of docs/RELIABILITY.md over the history and the healed federation")
	(&checker{net: n, rep: rep, ops: res.Ops, final: final, initialRows: initial, start: hist.start, probes: probes}).run()
	for _, p := range probes {
		res.Ops = append(res.Ops, p.ops...)
	}
	return res, nil
}

// during counts the operations that overlapped [from, to] (ms) by kind
// and outcome.
func during(ops []*Op, from, to float64) string {
	n := map[string]int{}
	for _, op := range ops {
		if op.Invoke <= to && op.Complete >= from {
			n[op.Kind+" "+op.Outcome]++
		}
	}
	return fmtCounts(n)
}

// fmtCounts writes counts as "a 1, b 2" in key order.
func fmtCounts(n map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// reasonClass shortens a reason to its first words, so that reasons that
// differ only in addresses or IDs count together.
func reasonClass(r string) string {
	if i := strings.IndexAny(r, ":("); i > 0 {
		r = r[:i]
	}
	if f := strings.Fields(r); len(f) > 8 {
		r = strings.Join(f[:8], " ") + "…"
	}
	return strings.TrimSpace(r)
}

func noteOf(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// restartAll stops every replica and starts it again, so that each reads
// its chaos.json; it waits until every one is ready.
func restartAll(ctx context.Context, n *Net) error {
	err := n.each(func(a *AgencyNode) error {
		for _, r := range a.Replicas {
			n.Stop(r)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(a.Replicas))
		for i, r := range a.Replicas {
			wg.Go(func() {
				if err := n.startReplica(ctx, a, r); err != nil {
					errs[i] = err
					return
				}
				errs[i] = n.waitReady(ctx, a, r)
			})
		}
		wg.Wait()
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("chaos: restart through the proxies: %w", err)
	}
	return nil
}

// settle waits until every replica of every agency is ready with an audit
// leader and they report the same audit size, then reads what the checker
// needs: each replica's export, size and set digests.
func settle(ctx context.Context, n *Net, hist *history) (finalState, error) {
	fs := finalState{exports: map[string][]*Op{}, sizes: map[string][]uint64{}, digests: map[string][]map[string]string{}, keys: map[string]string{}}
	var errs []string
	var mu sync.Mutex
	_ = n.each(func(a *AgencyNode) error {
		key, err := os.ReadFile(filepath.Join(a.Replicas[0].Dir, "agency.pub"))
		mu.Lock()
		fs.keys[a.Code] = strings.TrimSpace(string(key))
		mu.Unlock()
		if err != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Minute)
		var sizes []uint64
		for {
			sizes = sizes[:0]
			for i := range a.Replicas {
				c, err := a.Client(i, "admin")
				if err != nil {
					break
				}
				sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				st, err := c.Status(sctx)
				cancel()
				if err != nil {
					break
				}
				for _, g := range st.Groups {
					if g.Name == "audit" && g.Quorum && g.Healthy {
						sizes = append(sizes, g.Size)
					}
				}
			}
			if len(sizes) == len(a.Replicas) && allEqual(sizes) || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleep(ctx, 500*time.Millisecond)
		}
		// The export of each replica in turn (each appends its own entry).
		w := &workload{net: n, hist: hist, hard: ctx}
		var xs []*Op
		for i := range a.Replicas {
			if op := w.export(ctx, nil, a, 9, i, true); op != nil {
				xs = append(xs, op)
			}
		}
		// The set digests of every replica, once they agree: a replica
		// may still be building the sets of a rotation or an import.
		var ds []map[string]string
		for deadline := time.Now().Add(90 * time.Second); ; {
			ds = digestsOf(ctx, a)
			if len(ds) == len(a.Replicas) && sameDigests(ds) || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleep(ctx, time.Second)
		}
		mu.Lock()
		defer mu.Unlock()
		fs.sizes[a.Code] = append([]uint64(nil), sizes...)
		fs.exports[a.Code] = xs
		fs.digests[a.Code] = ds
		if len(sizes) != len(a.Replicas) || !allEqual(sizes) {
			errs = append(errs, fmt.Sprintf("%s: audit sizes %v after 2 minutes", a.Code, sizes))
		}
		return nil
	})
	if len(errs) > 0 {
		return fs, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return fs, nil
}

// digestsOf reads the set digest of every kind on every replica of a
// that answers.
func digestsOf(ctx context.Context, a *AgencyNode) []map[string]string {
	var ds []map[string]string
	for i := range a.Replicas {
		c, err := a.Client(i, "admin")
		if err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := c.DataStats(sctx)
		cancel()
		if err != nil {
			continue
		}
		d := map[string]string{}
		for _, k := range st.Kinds {
			d[k.Kind] = k.Digest
			d[k.Kind+" rows"] = strconv.Itoa(k.Rows)
		}
		ds = append(ds, d)
	}
	return ds
}

func sameDigests(ds []map[string]string) bool {
	for _, d := range ds[1:] {
		if !maps.Equal(d, ds[0]) {
			return false
		}
	}
	return true
}

func allEqual(xs []uint64) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

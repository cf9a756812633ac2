package testnet

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"index/suffixarray"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
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
		d.leaderKill(ctx)
	} else {
		d.rep.Step("Matching between agencies", "")
		d.rep.Note("one agency has no partner: the matching steps need --agencies 2 or more")
	}
	d.exports(ctx)
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

func (d *demo) checkFederation(ctx context.Context) {
	rep := d.rep
	rep.Step("Check the federation", "Each replica is ready with a quorum, every agency pins every other, and one policy version is in force everywhere.")
	for _, a := range d.net.Agencies {
		// A replica busy building its sets may miss a heartbeat: give
		// the agency a minute to be healthy everywhere at once.
		start := time.Now()
		err := poll(ctx, time.Minute, func() error {
			var bad []string
			for i, r := range a.Replicas {
				c, err := a.Client(i, "admin")
				if err != nil {
					return err
				}
				st, err := c.Status(ctx)
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s: %v", r.ID, err))
					continue
				}
				if st.Policy != d.net.Policy {
					bad = append(bad, fmt.Sprintf("%s: policy %s in force", r.ID, short(st.Policy)))
				}
				for _, g := range st.Groups {
					if !g.Quorum || !g.Healthy {
						bad = append(bad, fmt.Sprintf("%s: group %s has no healthy quorum", r.ID, g.Name))
					}
				}
			}
			return joinErr(bad)
		})
		waited := ""
		if s := time.Since(start); s > time.Second {
			waited = fmt.Sprintf(" (after %s)", s.Round(time.Second))
		}
		rep.Check(err == nil, a.Code+" replicas ready",
			"%s", errText(err, fmt.Sprintf("%d replicas, policy %s%s", len(a.Replicas), short(d.net.Policy), waited)))
		c, err := d.client(a, "admin")
		var ps []httpapi.Partner
		if err == nil {
			ps, err = c.Partners(ctx)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Agency)
		}
		sort.Strings(got)
		var want []string
		for _, p := range d.net.Agencies {
			if p != a {
				want = append(want, p.Code)
			}
		}
		sort.Strings(want)
		rep.Check(err == nil && slices.Equal(got, want), a.Code+" pins its partners", "%s",
			errText(err, fmt.Sprintf("pinned %v, want %v", got, want)))
	}
}

func joinErr(msgs []string) error {
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// checkHoldings checks that every replica holds the imported rows and has
// built the same encoded sets.
func (d *demo) checkHoldings(ctx context.Context) {
	rep := d.rep
	rep.Step("Holdings and encoded sets", "Each agency imported its synthetic holdings; every replica builds byte-identical encoded sets (same digest).")
	if !d.net.HasVerb(ctx, "data", "import") {
		rep.Check(false, "holdings imported", "this xborder has no 'data import' verb")
		return
	}
	// One deadline for all agencies: they build their sets at once.
	deadline := time.Now().Add(buildBound(d.cfg))
	for _, a := range d.net.Agencies {
		want := map[string]int{}
		for _, r := range d.net.Truth.Rows {
			if r.Agency == a.Code {
				want[r.Kind] = r.Rows
			}
		}
		var last string
		err := poll(ctx, time.Until(deadline), func() error {
			digests := map[string]string{}
			for i, r := range a.Replicas {
				if !r.Running() {
					continue
				}
				c, err := a.Client(i, "admin")
				if err != nil {
					return err
				}
				st, err := c.DataStats(ctx)
				if err != nil {
					return fmt.Errorf("%s: %w", r.ID, err)
				}
				for _, k := range st.Kinds {
					switch {
					case k.Rows > want[k.Kind]:
						return permanent(fmt.Errorf("%s holds %d %s rows, more than the %d imported", r.ID, k.Rows, k.Kind, want[k.Kind]))
					case k.Rows < want[k.Kind]:
						return fmt.Errorf("%s holds %d %s rows, want %d", r.ID, k.Rows, k.Kind, want[k.Kind])
					case k.Built < k.Versions || k.Digest == "":
						return fmt.Errorf("%s has built %d of %d %s set versions", r.ID, k.Built, k.Versions, k.Kind)
					case k.Versions == 1 && k.Entries < k.Rows:
						return permanent(fmt.Errorf("%s built a %s set of %d entries for %d rows", r.ID, k.Kind, k.Entries, k.Rows))
					}
					if dg, ok := digests[k.Kind]; ok && dg != k.Digest {
						return permanent(fmt.Errorf("%s set digests differ between replicas", k.Kind))
					}
					digests[k.Kind] = k.Digest
				}
				if len(st.Kinds) < len(want) {
					return fmt.Errorf("%s holds %d kinds, want %d", r.ID, len(st.Kinds), len(want))
				}
			}
			last = fmt.Sprintf("%d kinds on %d replicas, one digest per kind", len(digests), len(a.Replicas))
			return nil
		})
		rep.Check(err == nil, a.Code+" holdings and sets", "%s", errText(err, last))
	}
}

// permanentError is an error that waiting does not mend: poll returns it
// at once.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// buildBound bounds the wait for every replica to build its encoded sets:
// three minutes, or more for large holdings (every replica of every agency
// evaluates every row once, at about 15,000 rows a second on this 2-core
// machine, all replicas together).
func buildBound(cfg Config) time.Duration {
	rows := time.Duration(cfg.Holdings) * time.Duration(cfg.Agencies) * time.Duration(cfg.Replicas)
	return max(3*time.Minute, rows*time.Second/15000)
}

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

// queryArgs are the arguments of one `xborder query`.
type queryArgs struct {
	querier  *AgencyNode
	kind     string
	caseRef  string
	offence  string
	urgent   bool
	partners []string // empty: all
	file     string
}

// queryResult is what the demo reads of `xborder query --json`.
type queryResult struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Values     int             `json:"values"`
	PaddedSize int             `json:"padded_size"`
	Partners   []partnerResult `json:"partners"`
}

// partnerResult is one partner's part of a query result.
type partnerResult struct {
	Agency    string `json:"agency"`
	RequestID string `json:"request_id"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason"`
	HitCount  int    `json:"hit_count"`
	Millis    int64  `json:"millis"`
	Hits      []struct {
		Line  int    `json:"line"`
		Value string `json:"value"` // the querier's own input line
	} `json:"hits"`
}

// queryOut is one run of `xborder query`.
type queryOut struct {
	Result queryResult
	Code   int
	Stderr string
	kind   string
	region string
}

// query runs `xborder query --json` as the querier's investigator.
func (d *demo) query(ctx context.Context, q queryArgs) (queryOut, error) {
	if !d.canQuery {
		return queryOut{}, errors.New("this xborder has no 'query' verb")
	}
	parts := "all"
	if len(q.partners) > 0 {
		parts = strings.Join(q.partners, ",")
	}
	args := []string{"query", "--kind", q.kind, "--case", q.caseRef,
		"--basis", "testnet demo: synthetic data", "--offence", q.offence,
		"--purpose", "show the federation works", "--partners", parts, "--region", q.querier.Code, "--json",
		"--wait", "3m", "--api", d.api(q.querier), "--token-file", q.querier.Tokens["investigator"]}
	if q.urgent {
		args = append(args, "--urgent")
	}
	args = append(args, q.file)
	out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), 5*time.Minute, args...)
	if err != nil {
		return queryOut{}, err
	}
	o := queryOut{Code: code, Stderr: stderr, kind: q.kind, region: q.querier.Code}
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &o.Result); err != nil {
			return o, fmt.Errorf("read the JSON of xborder query (exit %d): %w", code, err)
		}
	}
	return o, nil
}

// hitsOf returns the sorted canonical forms of a partner's hits.
func (o queryOut) hitsOf(p partnerResult) []string {
	k, _ := ident.ParseKind(o.kind)
	var out []string
	for _, h := range p.Hits {
		c, err := ident.Canonical(k, h.Value, ident.Options{Region: o.region})
		if err != nil {
			c = "invalid line " + fmt.Sprint(h.Line)
		}
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// partner returns a partner's part of a result.
func (o queryOut) partner(code string) (partnerResult, bool) {
	for _, p := range o.Result.Partners {
		if p.Agency == code {
			return p, true
		}
	}
	return partnerResult{}, false
}

// expect returns the sorted canonical hits querier must get from partner
// for kind, as the ground truth says (altered when Break is "truth").
func (d *demo) expect(querier, partner, kind string) []string {
	want := d.net.Truth.Expected(querier, partner, kind)
	if d.cfg.Break == "truth" && querier == d.net.Agencies[0].Code && kind == "phone" {
		want = append(want, "broken-ground-truth")
	}
	sort.Strings(want)
	return want
}

// checkHits checks one query's result against the ground truth for every
// partner.
func (d *demo) checkHits(name string, q queryArgs, o queryOut, err error) {
	if err != nil {
		d.rep.Check(false, name, "%v", err)
		return
	}
	if o.Code != 0 {
		d.rep.Check(false, name, "xborder query exit %d: %s", o.Code, lastLine(o.Stderr))
		return
	}
	var msgs []string
	ok := true
	for _, p := range d.net.Agencies {
		if p == q.querier || (len(q.partners) > 0 && !slices.Contains(q.partners, p.Code)) {
			continue
		}
		r, found := o.partner(p.Code)
		if !d.lim.allowed(q.querier.Code, p.Code, q.kind) {
			if found && r.HitCount > 0 {
				ok = false
				msgs = append(msgs, fmt.Sprintf("%s: %d hits where policy allows no %s query", p.Code, r.HitCount, q.kind))
			} else {
				msgs = append(msgs, fmt.Sprintf("%s: not asked (policy)", p.Code))
			}
			continue
		}
		want := d.expect(q.querier.Code, p.Code, q.kind)
		got := o.hitsOf(r)
		if !found || (r.Outcome != httpapi.OutcomeHits && r.Outcome != httpapi.OutcomeNoHits) || !slices.Equal(got, want) {
			ok = false
			reason := r.Reason
			if !found {
				reason = "no answer"
			}
			msgs = append(msgs, fmt.Sprintf("%s: %s %d hits, want %d %s", p.Code, r.Outcome, len(got), len(want), reason))
			continue
		}
		msgs = append(msgs, fmt.Sprintf("%s %d/%d hits in %dms", p.Code, len(got), len(want), r.Millis))
	}
	d.rep.Check(ok, name, "%d values (padded %d); %s", o.Result.Values, o.Result.PaddedSize, strings.Join(msgs, ", "))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// queryKinds are the kinds of the demo's plain queries: the others need
// an approver in the example policy.
var queryKinds = []string{"phone", "email", "btc", "eth", "iban"}

func (d *demo) queries(ctx context.Context) {
	rep := d.rep
	rep.Step("Queries of several kinds from every agency to all partners",
		"Each investigator asks every partner about the planted identifiers it holds and as many decoys; the hits must be exactly the ground truth.")
	for _, a := range d.net.Agencies {
		for _, k := range d.askable(a, queryKinds) {
			q := queryArgs{querier: a, kind: k, caseRef: "TN-" + a.Code + "-" + strings.ToUpper(k), offence: "thb",
				file: filepath.Join(d.net.Dir(), "queries", a.Code, k+".txt")}
			o, err := d.query(ctx, q)
			d.checkHits(fmt.Sprintf("%s asks about %s", a.Code, k), q, o, err)
		}
	}
}

// askable returns those of kinds that the policy lets querier ask at least
// one partner about.
func (d *demo) askable(querier *AgencyNode, kinds []string) []string {
	var out, not []string
	for _, k := range kinds {
		ok := false
		for _, p := range d.net.Agencies {
			if p != querier && d.lim.allowed(querier.Code, p.Code, k) {
				ok = true
			}
		}
		if ok {
			out = append(out, k)
		} else {
			not = append(not, k)
		}
	}
	if len(not) > 0 {
		d.rep.Note("%s asks no partner here about %s: the example policy does not let them exchange it", querier.Code, strings.Join(not, ", "))
	}
	return out
}

func (d *demo) spellings(ctx context.Context) {
	rep := d.rep
	rep.Step("Other spellings still hit",
		"The same identifiers written differently from every holder (international phone format, upper-case e-mail, lower-case IBAN, un-checksummed wallet) canonicalise to the same hits.")
	a := d.net.Agencies[0]
	for _, k := range d.askable(a, []string{"phone", "email", "eth", "iban"}) {
		q := queryArgs{querier: a, kind: k, caseRef: "TN-SPELL-" + strings.ToUpper(k), offence: "thb",
			file: filepath.Join(d.net.Dir(), "queries", a.Code, k+"-spelling.txt")}
		o, err := d.query(ctx, q)
		d.checkHits(fmt.Sprintf("%s asks about %s in other spellings", a.Code, k), q, o, err)
	}
}

// budgetPlan picks the querier, responder and kind of the over-budget
// step: the responder's budget for the querier is the smallest.
func (d *demo) budgetPlan() (q, r *AgencyNode, kind string, size, budget int) {
	q, r = d.net.Agencies[1], d.net.Agencies[0]
	best := 0
	for _, k := range queryKinds {
		if !d.lim.allowed(q.Code, r.Code, k) {
			continue
		}
		l := d.lim.Partners[q.Code][k]
		if best == 0 || l.DailyBudget < best {
			best, kind = l.DailyBudget, k
			size = min(l.MaxQuery, 1024)
		}
	}
	return q, r, kind, size, best
}

func (d *demo) overBudget(ctx context.Context) {
	rep := d.rep
	q, r, kind, size, budget := d.budgetPlan()
	rep.Step(fmt.Sprintf("A query over budget is denied on both ledgers (%s asks %s about %s)", q.Code, r.Code, kind),
		fmt.Sprintf("%s may ask %s about %d padded %s identifiers a day; queries of %d run until the budget is spent.", q.Code, r.Code, budget, kind, size))
	if !d.canQuery {
		rep.Check(false, "over-budget denial", "this xborder has no 'query' verb")
		return
	}
	file := filepath.Join(d.net.Dir(), "queries", q.Code, "budget-"+kind+".txt")
	if err := writeLines(file, Decoys(d.cfg.Seed, q.Code, kind, 0, size)); err != nil {
		rep.Check(false, "over-budget denial", "%v", err)
		return
	}
	var denied partnerResult
	var used int
	for i := 0; i <= budget/size+1; i++ {
		o, err := d.query(ctx, queryArgs{querier: q, kind: kind, caseRef: "TN-BUDGET", offence: "thb", partners: []string{r.Code}, file: file})
		if err != nil {
			rep.Check(false, "over-budget denial", "%v", err)
			return
		}
		p, _ := o.partner(r.Code)
		if p.Outcome == httpapi.OutcomeDenied {
			denied = p
			break
		}
		if o.Code != 0 || (p.Outcome != httpapi.OutcomeNoHits && p.Outcome != httpapi.OutcomeHits) {
			rep.Check(false, "over-budget denial", "query %d: exit %d, outcome %q %s %s", i+1, o.Code, p.Outcome, p.Reason, lastLine(o.Stderr))
			return
		}
		used += o.Result.PaddedSize
	}
	if !rep.Check(denied.Outcome == httpapi.OutcomeDenied && strings.Contains(strings.ToLower(denied.Reason), "budget"),
		"denied once the budget is spent", "after %d padded identifiers: %s %q", used, denied.Outcome, denied.Reason) {
		return
	}
	for _, a := range []*AgencyNode{r, q} {
		e, err := d.findEntry(ctx, a, denied.RequestID)
		rep.Check(err == nil && e.Outcome == ledger.OutcomeDeniedBudget || err == nil && a == q && isDenied(e.Outcome),
			a.Code+"'s ledger records the denial", "%s", errText(err, fmt.Sprintf("entry %d: %s, %s", e.Index, typeName(e.Type), e.Outcome)))
	}
}

func isDenied(o ledger.Outcome) bool {
	switch o {
	case ledger.OutcomeDenied, ledger.OutcomeDeniedBudget, ledger.OutcomeDeniedReplay, ledger.OutcomeDeniedStalePolicy:
		return true
	}
	return false
}

func typeName(t ledger.Type) string {
	if b, err := json.Marshal(t); err == nil {
		return strings.Trim(string(b), `"`)
	}
	return fmt.Sprint(uint8(t))
}

// findEntry returns the last entry of a's ledger under request ID id that
// records a denial, read as its auditor.
func (d *demo) findEntry(ctx context.Context, a *AgencyNode, id string) (ledger.Entry, error) {
	if id == "" {
		return ledger.Entry{}, errors.New("the result names no request ID")
	}
	var found ledger.Entry
	err := poll(ctx, 10*time.Second, func() error {
		c, err := d.client(a, "auditor")
		if err != nil {
			return err
		}
		es, err := c.Entries(ctx, "testnet demo: check the over-budget denial", ledger.Filter{})
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.RequestID == id && isDenied(e.Outcome) {
				found = e
			}
		}
		if found.RequestID == "" {
			return fmt.Errorf("no denial entry under request %s among %d entries", id, len(es))
		}
		return nil
	})
	return found, err
}

func (d *demo) approval(ctx context.Context) {
	rep := d.rep
	q := d.net.Agencies[1]
	rep.Step(fmt.Sprintf("A query that needs an approver (%s, more than %d phone numbers)", q.Code, d.lim.Approval.SizeOver),
		"The query waits until the agency's approver signs it off with 'xborder approve', then runs and hits as the ground truth says.")
	if !d.canQuery || !d.net.HasVerb(ctx, "approve") {
		rep.Check(false, "approved query", "this xborder has no 'query' or 'approve' verb")
		return
	}
	var lines []string
	for _, p := range d.net.Truth.Known(q.Code, "phone") {
		lines = append(lines, p.Canonical)
	}
	lines = append(lines, Decoys(d.cfg.Seed, q.Code, "phone", 50000, d.lim.Approval.SizeOver+1-len(lines)+10)...)
	file := filepath.Join(d.net.Dir(), "queries", q.Code, "approval-phone.txt")
	if err := writeLines(file, lines); err != nil {
		rep.Check(false, "approved query", "%v", err)
		return
	}
	qa := queryArgs{querier: q, kind: "phone", caseRef: "TN-APPROVAL", offence: "thb", file: file}
	type res struct {
		o   queryOut
		err error
	}
	done := make(chan res, 1)
	// The query waits for its approval; it is cut short if the approval
	// fails.
	qctx, qcancel := context.WithCancel(ctx)
	defer qcancel()
	go func() {
		o, err := d.query(qctx, qa)
		done <- res{o, err}
	}()
	// Find the pending query and approve it as the approver.
	var id string
	err := poll(ctx, 60*time.Second, func() error {
		c, err := d.client(q, "approver")
		if err != nil {
			return err
		}
		recs, err := c.Queries(ctx, true)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Case == "TN-APPROVAL" && r.Status == "pending" {
				id = r.ID
				return nil
			}
		}
		return errors.New("no pending query")
	})
	if !rep.Check(err == nil, "the query waits for an approver", "%s", errText(err, "pending as "+id)) {
		qcancel()
		<-done
		return
	}
	_, code, stderr, err := runVerbCode(ctx, d.net.Binary(), time.Minute, "approve", id,
		"--api", d.api(q), "--token-file", q.Tokens["investigator"])
	rep.Check(err == nil && code == 3, "the investigator cannot approve it", "%s", errText(err, fmt.Sprintf("exit %d %s", code, lastLine(stderr))))
	out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), time.Minute, "approve", id,
		"--api", d.api(q), "--token-file", q.Tokens["approver"])
	if !rep.Check(err == nil && code == 0, "the approver approves it", "%s", errText(err, fmt.Sprintf("exit %d %s", code, strings.TrimSpace(out+" "+lastLine(stderr))))) {
		qcancel()
	}
	select {
	case r := <-done:
		d.checkHits("the approved query runs", qa, r.o, r.err)
	case <-time.After(3 * time.Minute):
		rep.Check(false, "the approved query runs", "no answer within 3 minutes of the approval")
		qcancel()
		<-done
	}
}

// leader returns the replica of a that leads its audit group.
func (d *demo) leader(ctx context.Context, a *AgencyNode) (*Replica, error) {
	var lead *Replica
	err := poll(ctx, 30*time.Second, func() error {
		for i, r := range a.Replicas {
			if !r.Running() {
				continue
			}
			c, err := a.Client(i, "admin")
			if err != nil {
				return err
			}
			st, err := c.Status(ctx)
			if err != nil {
				continue
			}
			for _, g := range st.Groups {
				if g.Name == "audit" && g.Leader != "" && g.Quorum {
					for _, x := range a.Replicas {
						if x.ID == g.Leader && x.Running() {
							lead = x
							return nil
						}
					}
				}
			}
		}
		return errors.New("no replica knows a running leader of the audit group")
	})
	return lead, err
}

func (d *demo) leaderKill(ctx context.Context) {
	rep := d.rep
	r, q := d.net.Agencies[0], d.net.Agencies[1]
	rep.Step(fmt.Sprintf("%s's leader replica is killed (SIGKILL) in the middle of a query", r.Code),
		"The surviving replicas elect a new leader; the federation keeps answering, with the same hits.")
	if len(r.Replicas) < 3 {
		rep.Note("%s runs one replica: killing it would stop the agency (run with --replicas 3 to see the failover)", r.Code)
		return
	}
	lead, err := d.leader(ctx, r)
	if !rep.Check(err == nil, r.Code+" has a leader", "%s", errText(err, lead.ID)) {
		return
	}
	// A query of 1,000 phone numbers (the planted ones among them) takes
	// long enough for the kill to land while it runs.
	var lines []string
	for _, p := range d.net.Truth.Known(q.Code, "phone") {
		lines = append(lines, p.Canonical)
	}
	lines = append(lines, Decoys(d.cfg.Seed, q.Code, "phone", 20000, max(0, 1000-len(lines)))...)
	file := filepath.Join(d.net.Dir(), "queries", q.Code, "failover-phone.txt")
	if err := writeLines(file, lines); err != nil {
		rep.Check(false, "failover query file", "%v", err)
		return
	}
	qa := queryArgs{querier: q, kind: "phone", caseRef: "TN-FAILOVER", offence: "thb", partners: []string{r.Code}, file: file}
	var wg sync.WaitGroup
	var mid queryOut
	var midErr error
	wg.Go(func() { mid, midErr = d.query(ctx, qa) })
	time.Sleep(150 * time.Millisecond) // let the query reach the partner
	lead.Kill()
	rep.Note("killed %s/%s (pid %d) with SIGKILL", r.Code, lead.ID, lead.PID())
	wg.Wait()
	if p, ok := mid.partner(r.Code); midErr == nil && ok {
		rep.Note("the query in flight ended with exit %d: %s in %dms", mid.Code, strings.TrimSpace(p.Outcome+" "+p.Reason), p.Millis)
	} else {
		rep.Note("the query in flight ended with exit %d: %s", mid.Code, errText(midErr, lastLine(mid.Stderr)))
	}
	nl, err := d.leader(ctx, r)
	rep.Check(err == nil && nl != lead, r.Code+" elects a new leader", "%s", errText(err, "now "+nlID(nl)))
	var o queryOut
	err = poll(ctx, 60*time.Second, func() error {
		o, err = d.query(ctx, qa)
		if err != nil {
			return err
		}
		if p, _ := o.partner(r.Code); p.Outcome != httpapi.OutcomeHits && p.Outcome != httpapi.OutcomeNoHits {
			return fmt.Errorf("%s: %s", p.Outcome, p.Reason)
		}
		return nil
	})
	if err != nil {
		rep.Check(false, q.Code+" still gets its hits from "+r.Code, "%v", err)
	} else {
		d.checkHits(q.Code+" still gets its hits from "+r.Code, qa, o, nil)
	}
	// And the agency that lost its leader still asks its partners.
	rq := queryArgs{querier: r, kind: "email", caseRef: "TN-FAILOVER-OUT", offence: "thb",
		file: filepath.Join(d.net.Dir(), "queries", r.Code, "email.txt")}
	o, err = d.query(ctx, rq)
	d.checkHits(r.Code+" still asks its partners", rq, o, err)
}

func nlID(r *Replica) string {
	if r == nil {
		return "none"
	}
	return r.ID
}

// exports exports every agency's ledger, verifies each offline, and
// searches them for every planted identifier.
func (d *demo) exports(ctx context.Context) {
	rep := d.rep
	rep.Step("Every agency's ledger is exported and verified offline",
		"The auditor exports through the API into DIR/exports/<agency>/; 'xborder ledger verify' checks signature, Merkle tree and every entry against the agency key.")
	var dirs []string
	for i, a := range d.net.Agencies {
		dir := filepath.Join(d.net.Dir(), "exports", a.Code)
		c, err := d.client(a, "auditor")
		var x httpapi.Export
		if err == nil {
			x, err = c.Export(ctx)
		}
		if err == nil {
			err = x.WriteDir(dir)
		}
		if !rep.Check(err == nil, a.Code+" exports its ledger", "%s", errText(err, dir)) {
			continue
		}
		dirs = append(dirs, dir)
		if d.cfg.Break == "export" && i == 0 {
			if err := flipByte(filepath.Join(dir, ledger.ExportEntries)); err != nil {
				rep.Check(false, "break the export", "%v", err)
			}
			rep.Note("one byte of %s's export was changed on purpose (--break export)", a.Code)
		}
		out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), 5*time.Minute, "ledger", "verify", dir,
			"--key", filepath.Join(a.Replicas[0].Dir, "agency.pub"))
		rep.Check(err == nil && code == 0, a.Code+" export verifies offline", "%s",
			errText(err, strings.TrimSpace(firstLine(out)+" "+lastLineIf(code != 0, stderr))))
	}
	rep.Step("No ledger export holds a planted identifier",
		"Every canonical planted identifier, and its SHA-256 in hex and base64, is searched for in every export file.")
	var pats [][]byte
	for _, p := range d.net.Truth.Planted {
		sum := sha256.Sum256([]byte(p.Canonical))
		pats = append(pats, []byte(p.Canonical), []byte(hex.EncodeToString(sum[:])), []byte(base64.StdEncoding.EncodeToString(sum[:])))
	}
	for _, dir := range dirs {
		found, files, size, err := searchDir(dir, pats)
		rep.Check(err == nil && found == 0, filepath.Base(dir)+" export holds none", "%s",
			errText(err, fmt.Sprintf("%d files, %d bytes searched for %d patterns: %d found", files, size, len(pats), found)))
	}
}

func firstLine(s string) string {
	return strings.SplitN(strings.TrimSpace(s), "\n", 2)[0]
}

func lastLineIf(b bool, s string) string {
	if !b {
		return ""
	}
	return lastLine(s)
}

// flipByte changes one base64 character in the middle of an export's
// entries file, as a tamperer or a bad disk would.
func flipByte(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	i := strings.Index(string(b[len(b)/2:]), `"leaf":"`)
	if i < 0 {
		return fmt.Errorf("flip a byte of %s: no leaf in its second half", file)
	}
	j := len(b)/2 + i + len(`"leaf":"`) + 10
	if b[j] == 'A' {
		b[j] = 'B'
	} else {
		b[j] = 'A'
	}
	return os.WriteFile(file, b, 0o644)
}

// searchDir counts the patterns found in the files of dir.
func searchDir(dir string, pats [][]byte) (found, files int, size int64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return found, files, size, err
		}
		files++
		size += int64(len(b))
		idx := suffixarray.New(b)
		for _, p := range pats {
			if len(idx.Lookup(p, 1)) > 0 {
				found++
			}
		}
	}
	return found, files, size, nil
}

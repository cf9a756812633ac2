package testnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"github.com/anishathalye/porcupine"
	"go.yaml.in/yaml/v3"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// finalState is what the checker reads of the healed federation.
type finalState struct {
	// exports[agency][replica]: each replica's export, taken one after
	// another once the workload stopped.
	exports map[string][]*Op
	// sizes[agency][replica]: each replica's audit size once they agree
	// (or the last seen).
	sizes map[string][]uint64
	// digests[agency][replica]: kind → set digest.
	digests map[string][]map[string]string
	keys    map[string]string // agency → note verifier key
}

// ledgerOf is one agency's final ledger, parsed.
type ledgerOf struct {
	lines []format.ExportLine
}

func parseExport(entries string) (ledgerOf, error) {
	var l ledgerOf
	s := bufio.NewScanner(strings.NewReader(entries))
	s.Buffer(make([]byte, 1<<20), 16<<20)
	for s.Scan() {
		var x format.ExportLine
		if err := json.Unmarshal(s.Bytes(), &x); err != nil {
			return l, fmt.Errorf("parse export line %d: %w", len(l.lines), err)
		}
		l.lines = append(l.lines, x)
	}
	return l, s.Err()
}

// byRequest counts the entries of each (type, request ID).
func (l ledgerOf) byRequest() map[string][]format.ExportLine {
	out := map[string][]format.ExportLine{}
	for _, x := range l.lines {
		if x.Header.RequestID != "" {
			k := x.Header.Type.String() + "/" + x.Header.RequestID
			out[k] = append(out[k], x)
		}
	}
	return out
}

// checker checks the invariants of docs/RELIABILITY.md over a run's
// history and the healed federation, each as one check of the report.
type checker struct {
	net   *Net
	rep   *Report
	ops   []*Op
	final finalState
	// last is each agency's final ledger (its last replica export).
	last map[string]ledgerOf
	// initialRows is each agency's rows of stewardKind before the workload.
	initialRows map[string]int
	// start is when the run began (the operations' times count from it).
	start time.Time
	// probes are the partners' queries of removed and held rows, once
	// healed.
	probes []*probe
}

func (c *checker) run() {
	c.last = map[string]ledgerOf{}
	for _, a := range c.net.Agencies {
		xs := c.final.exports[a.Code]
		if len(xs) == 0 || xs[len(xs)-1].Outcome != OpOK {
			c.rep.Check(false, a.Code+": final export", "no export of the healed ledger; the other checks of %s are void", a.Code)
			continue
		}
		l, err := parseExport(xs[len(xs)-1].entries)
		if err != nil {
			c.rep.Check(false, a.Code+": final export", "%v", err)
			continue
		}
		c.last[a.Code] = l
		for _, x := range xs[:len(xs)-1] {
			x.entries = "" // only the last export's entries are read again (checkpoints)
		}
	}
	c.linearizable()
	c.exactlyOnce()
	c.answersRecorded()
	c.approvals()
	c.pins()
	c.budgets()
	c.replicasAgree()
	c.checkpoints()
	c.noAlarms()
	c.sets()
	c.imports()
	c.removals(c.probes)
	c.truth()
}

// imports: no acknowledged import lost, no acknowledged removal undone:
// every replica holds, of stewardKind, the rows held before the workload
// plus those imported minus those removed, each operation whose outcome
// is unknown counted as done or not.
func (c *checker) imports() {
	for _, a := range c.net.Agencies {
		base, ok := c.initialRows[a.Code]
		if !ok {
			c.rep.Check(false, a.Code+": no acknowledged import lost", "the rows held before the workload were not read")
			continue
		}
		lo, hi := base, base
		n := map[string]int{}
		for _, op := range c.agencyOps(a.Code) {
			switch {
			case op.Kind == "import" && op.Outcome == OpOK:
				lo, hi = lo+op.Done, hi+op.Done
			case op.Kind == "import" && op.Outcome == OpUnknown:
				hi += op.Rows
			case op.Kind == "remove" && op.Outcome == OpOK:
				lo, hi = lo-op.Done, hi-op.Done
			case op.Kind == "remove" && op.Outcome == OpUnknown:
				lo -= op.Rows
			default:
				continue
			}
			n[op.Kind+" "+op.Outcome]++
		}
		var bad []string
		for i, d := range c.final.digests[a.Code] {
			rows, err := strconv.Atoi(d[stewardKind+" rows"])
			if err != nil || rows < lo || rows > hi {
				bad = append(bad, fmt.Sprintf("replica %d holds %s rows of %s", i+1, d[stewardKind+" rows"], stewardKind))
			}
		}
		c.rep.Check(len(bad) == 0 && len(c.final.digests[a.Code]) > 0, a.Code+": no acknowledged import lost, no removal undone",
			"rows of %s expected between %d and %d (%s)%s", stewardKind, lo, hi, fmtCounts(n), evidence(bad))
	}
}

func (c *checker) agencyOps(code string) []*Op {
	var out []*Op
	for _, op := range c.ops {
		if op.Agency == code {
			out = append(out, op)
		}
	}
	return out
}

// linearizable: each agency's appends and reads, checked against its
// final ledger and with porcupine against the append-only log model
// (chaosmodel.go), one agency at a time; the reads' entries are freed
// once their agency is checked (no other check needs them).
func (c *checker) linearizable() {
	for _, a := range c.net.Agencies {
		name := a.Code + ": ledger history linearizable (porcupine, append-only log)"
		l, ok := c.last[a.Code]
		if !ok {
			c.rep.Check(false, name, "no final export to resolve the unknown operations against")
			continue
		}
		xs := c.final.exports[a.Code]
		ops := c.agencyOps(a.Code)
		res, ev := checkLinearizable(ops, l, xs[len(xs)-1].Complete, 0)
		c.rep.Check(res == porcupine.Ok, name, "%s: %s", res, ev)
		for _, op := range ops {
			op.Read = nil
		}
	}
}

// exactlyOnce: every query part a partner answered (hits, no hits, stale)
// has its match_out and match_result on the querier's ledger and the
// partner's match_in exactly once under its request ID; no request ID has
// two entries of one type anywhere; and a part that failed before its
// match_out was recorded left no match_in.
func (c *checker) exactlyOnce() {
	byReq := map[string]map[string][]format.ExportLine{}
	for code, l := range c.last {
		byReq[code] = l.byRequest()
	}
	for _, a := range c.net.Agencies {
		own, ok := byReq[a.Code]
		if !ok {
			continue
		}
		var bad []string
		answered, unsent := 0, 0
		for _, op := range c.agencyOps(a.Code) {
			if op.Kind != "query" {
				continue
			}
			for _, p := range op.Partners {
				theirs, ok := byReq[p.Agency]
				if !ok || p.RequestID == "" {
					continue
				}
				in := theirs["match_in/"+p.RequestID]
				switch p.Outcome {
				case httpapi.OutcomeHits, httpapi.OutcomeNoHits, httpapi.OutcomeStale:
					answered++
					nOut, nRes := len(own["match_out/"+p.RequestID]), len(own["match_result/"+p.RequestID])
					if nOut != 1 || nRes != 1 || len(in) != 1 {
						bad = append(bad, fmt.Sprintf("op %d %s→%s request %s: match_out %d, match_result %d, %s match_in %d",
							op.ID, a.Code, p.Agency, short(p.RequestID), nOut, nRes, p.Agency, len(in)))
					}
				default:
					if p.OutboundIndex == nil && op.Outcome == OpOK && len(own["match_out/"+p.RequestID]) == 0 {
						unsent++
						if len(in) > 0 {
							bad = append(bad, fmt.Sprintf("op %d %s→%s request %s: %s before anything was sent, yet %s has a match_in",
								op.ID, a.Code, p.Agency, short(p.RequestID), p.Outcome, p.Agency))
						}
					}
				}
			}
		}
		for k, xs := range own {
			// Denials aside (a partner's retries), and approvals: pending,
			// approved and run share the query's ID (the approvals check).
			// Witness alarms are keyed by the log's origin, once per
			// witness and reason (their own check).
			if len(xs) > 1 && !strings.HasPrefix(k, "denial/") && !strings.HasPrefix(k, "approval/") && !strings.HasPrefix(k, "witness_alarm/") {
				bad = append(bad, fmt.Sprintf("%s holds %d entries %s (indexes %d and %d)", a.Code, len(xs), k, xs[0].Index, xs[1].Index))
			}
		}
		c.rep.Check(len(bad) == 0, a.Code+": match_out, match_result and the partner's match_in exactly once",
			"%d answered query parts, %d failed before sending%s", answered, unsent, evidence(bad))
	}
}

func evidence(bad []string) string {
	if len(bad) == 0 {
		return ""
	}
	sort.Strings(bad)
	if len(bad) > 8 {
		bad = append(bad[:8], fmt.Sprintf("and %d more", len(bad)-8))
	}
	return "; " + strings.Join(bad, "; ")
}

// limitsFile is what the budget check reads of limits.yaml.
type limitsFile struct {
	Urgency struct {
		Reserve int `yaml:"reserve_percent"`
	} `yaml:"urgency"`
	Kinds map[string]struct {
		DailyCap int `yaml:"daily_cap"`
	} `yaml:"kinds"`
	Partners map[string]map[string]struct {
		DailyBudget int `yaml:"daily_budget"`
	} `yaml:"partners"`
}

// budgets: on every responder, the padded sizes of the match_in entries
// admitted per partner, kind and UTC day stay within the partner's daily
// budget (with the urgency reserve), and per kind and day within the
// global cap.
func (c *checker) budgets() {
	b, err := os.ReadFile(filepath.Join(c.net.cfg.PolicyDir, "limits.yaml"))
	var lim limitsFile
	if err == nil {
		err = yaml.Unmarshal(b, &lim)
	}
	if err != nil {
		c.rep.Check(false, "budgets", "read limits.yaml: %v", err)
		return
	}
	for _, a := range c.net.Agencies {
		l, ok := c.last[a.Code]
		if !ok {
			continue
		}
		per, global := map[string]uint64{}, map[string]uint64{}
		for _, x := range l.lines {
			h := x.Header
			if h.Type.String() != "match_in" || h.Outcome.String() != "ok" {
				continue
			}
			day := h.Time.UTC().Format(time.DateOnly)
			per[h.Partner+"/"+h.Kind+"/"+day] += h.PaddedSize
			global[h.Kind+"/"+day] += h.PaddedSize
		}
		var bad []string
		for k, used := range per {
			f := strings.Split(k, "/")
			limit := uint64(lim.Partners[f[0]][f[1]].DailyBudget) * uint64(100+lim.Urgency.Reserve) / 100
			if used > limit {
				bad = append(bad, fmt.Sprintf("partner/%s: %d padded identifiers admitted, limit %d", k, used, limit))
			}
		}
		for k, used := range global {
			f := strings.Split(k, "/")
			if limit := uint64(lim.Kinds[f[0]].DailyCap); used > limit {
				bad = append(bad, fmt.Sprintf("kind/%s: %d admitted, cap %d", k, used, limit))
			}
		}
		c.rep.Check(len(bad) == 0, a.Code+": no budget exceeded", "%d partner budget keys used%s", len(per), evidence(bad))
	}
}

// replicasAgree: every replica of an agency reports the same audit size
// once healed, and each replica's export is a prefix of the agency's last
// one (the same root at its size).
func (c *checker) replicasAgree() {
	for _, a := range c.net.Agencies {
		sizes := c.final.sizes[a.Code]
		same := len(sizes) == len(a.Replicas) && !slices.ContainsFunc(sizes, func(s uint64) bool { return s != sizes[0] })
		c.rep.Check(same, a.Code+": every replica the same ledger size", "sizes %v", sizes)
	}
}

// checkpoints: every checkpoint an agency signed during the run (each
// export's, the replicas' final ones included) verifies against the
// agency's last export as a trusted earlier checkpoint: an RFC 6962
// consistency proof from the leaves, so no fork and no rollback.
func (c *checker) checkpoints() {
	for _, a := range c.net.Agencies {
		xs := c.final.exports[a.Code]
		if len(xs) == 0 || xs[len(xs)-1].Outcome != OpOK {
			continue
		}
		last := xs[len(xs)-1]
		fsys := fstest.MapFS{format.ExportCheckpoint: {Data: []byte(last.Checkpoint)}, format.ExportEntries: {Data: []byte(last.entries)}}
		var bad []string
		n := 0
		for _, op := range c.agencyOps(a.Code) { // the replicas' final exports among them
			if op.Kind != "export" || op.Outcome != OpOK || op.Checkpoint == "" || op == last {
				continue
			}
			n++
			if _, err := format.Verify(fsys, c.final.keys[a.Code], []byte(op.Checkpoint)); err != nil {
				bad = append(bad, fmt.Sprintf("op %d (replica %s, %d entries): %v", op.ID, op.Replica, op.Size, err))
			}
		}
		if _, err := format.Verify(fsys, c.final.keys[a.Code], nil); err != nil {
			bad = append(bad, fmt.Sprintf("the last export: %v", err))
		}
		c.rep.Check(len(bad) == 0, a.Code+": every signed checkpoint consistent with every later one",
			"%d checkpoints proven prefixes of the last (%d entries)%s", n, last.Size, evidence(bad))
	}
}

// sets: every replica serves the same set digest per kind.
func (c *checker) sets() {
	for _, a := range c.net.Agencies {
		ds := c.final.digests[a.Code]
		var bad []string
		for i := 1; i < len(ds); i++ {
			for k, d := range ds[0] {
				if ds[i][k] != d {
					bad = append(bad, fmt.Sprintf("%s: %s has %s, %s has %s", k, a.Replicas[0].ID, short(d), a.Replicas[i].ID, short(ds[i][k])))
				}
			}
		}
		ok := len(ds) == len(a.Replicas) && len(bad) == 0
		c.rep.Check(ok, a.Code+": every replica the same set digests", "%d replicas read%s", len(ds), evidence(bad))
	}
}

// truth: every query part answered hits or no hits got exactly the
// planted identifiers the partner holds; a stale one no hit that is not.
func (c *checker) truth() {
	for _, a := range c.net.Agencies {
		var bad []string
		n := 0
		for _, op := range c.agencyOps(a.Code) {
			if op.Kind != "query" || op.Outcome != OpOK {
				continue
			}
			for _, p := range op.Partners {
				want := c.net.Truth.Expected(a.Code, p.Agency, op.QueryKind)
				var got []string
				for _, h := range p.Hits {
					if h >= 0 && h < len(op.values) {
						got = append(got, op.values[h])
					}
				}
				sort.Strings(want)
				sort.Strings(got)
				got = slices.Compact(got)
				switch p.Outcome {
				case httpapi.OutcomeHits, httpapi.OutcomeNoHits:
					n++
					if !slices.Equal(got, want) {
						bad = append(bad, fmt.Sprintf("op %d %s→%s %s: %d hits, the planted truth %d", op.ID, a.Code, p.Agency, op.QueryKind, len(got), len(want)))
					}
				case httpapi.OutcomeStale:
					n++
					for _, g := range got {
						if !slices.Contains(want, g) {
							bad = append(bad, fmt.Sprintf("op %d %s→%s %s: stale answer with a hit the partner does not hold", op.ID, a.Code, p.Agency, op.QueryKind))
							break
						}
					}
				}
			}
		}
		c.rep.Check(len(bad) == 0, a.Code+": every answer equals the planted truth", "%d answers%s", n, evidence(bad))
	}
}

// noAlarms: no ledger holds a witness alarm. Nothing in a run forks a
// ledger or shows a witness two views of one (the checkpoints check proves
// every agency's checkpoints one history), so every alarm, of this node's
// witness against a partner's log or of a partner's witness against this
// ledger, is a false one. Evidence: each alarm's entry.
func (c *checker) noAlarms() {
	for _, a := range c.net.Agencies {
		l, ok := c.last[a.Code]
		if !ok {
			continue
		}
		var bad []string
		for _, x := range l.lines {
			if x.Header.Type.String() != "witness_alarm" {
				continue
			}
			what := fmt.Sprintf("entry %d at %s, partner %s", x.Index, x.Header.Time.UTC().Format("15:04:05.000"), x.Header.Partner)
			if x.Body != nil {
				what += ": " + x.Body.Purpose
			}
			bad = append(bad, what)
		}
		c.rep.Check(len(bad) == 0, a.Code+": no witness alarm", "%d alarms%s", len(bad), evidence(bad))
	}
}

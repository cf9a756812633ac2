package testnet

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

// probeRemoved and probeHeld bound how many removed and how many still
// held rows of its steward's a partner's probe asks an agency about.
const (
	probeRemoved = 20
	probeHeld    = 5
)

// probeWait bounds how long a probe asks again while the answer is not a
// plain one (stale, unavailable, denied): the partner's copy catching up.
const probeWait = 90 * time.Second

// probe is one partner's probe of an agency's steward rows, once healed.
type probe struct {
	owner, querier string
	removed, held  []string // canonical values asked
	ops            []*Op    // every attempt; the last one counts
	skipped        string
}

// probeRemovals asks, once the federation has healed, from each partner,
// each agency about rows of stewardKind its steward removed (acknowledged)
// and rows it imported and still holds (acknowledged, never chosen for a
// removal): the removed ones must not hit (a removal takes the rows out
// of the served set at once, docs/holdings.md "Removal and erasure"), the
// held ones must. Each attempt is an operation of kind "probe", after the
// final exports (so in no other check).
func (w *workload) probeRemovals(ctx context.Context) []*probe {
	var out []*probe
	for _, owner := range w.net.Agencies {
		k, _ := ident.ParseKind(stewardKind)
		canon := func(vs []string, n int) []string {
			var cs []string
			for _, v := range vs[:min(n, len(vs))] {
				if c, err := ident.Canonical(k, v, ident.Options{Region: owner.Code}); err == nil {
					cs = append(cs, c)
				}
			}
			return cs
		}
		w.mu.Lock()
		removed, held := canon(w.removed[owner.Code], probeRemoved), canon(w.held[owner.Code], probeHeld)
		w.mu.Unlock()
		for _, q := range w.net.Agencies {
			if q == owner {
				continue
			}
			p := &probe{owner: owner.Code, querier: q.Code, removed: removed, held: held}
			out = append(out, p)
			if len(removed) == 0 {
				p.skipped = "no acknowledged removal"
				continue
			}
			values := append(append([]string(nil), removed...), held...)
			for deadline := time.Now().Add(probeWait); ; {
				op := w.probeOnce(ctx, q, owner.Code, values, len(p.ops))
				p.ops = append(p.ops, op)
				if plain(op) || time.Now().After(deadline) || ctx.Err() != nil {
					break
				}
				sleep(ctx, 2*time.Second)
			}
		}
	}
	return out
}

// plain reports an acknowledged probe whose one part hit or did not.
func plain(op *Op) bool {
	return op.Outcome == OpOK && len(op.Partners) == 1 &&
		(op.Partners[0].Outcome == httpapi.OutcomeHits || op.Partners[0].Outcome == httpapi.OutcomeNoHits)
}

// probeOnce asks owner about values through one of q's replicas: the
// last one first, then, attempt after attempt, the one before it (a
// replica that is down must not fail the probe).
func (w *workload) probeOnce(ctx context.Context, q *AgencyNode, owner string, values []string, attempt int) *Op {
	ri := len(q.Replicas) - 1 - attempt%len(q.Replicas)
	op := w.hist.begin(q.Code, 8, "probe", q.Replicas[ri].ID)
	op.QueryKind, op.values = stewardKind, values
	c, err := q.Client(ri, "investigator")
	if err == nil {
		qctx, cancel := context.WithTimeout(ctx, opTimeout)
		var res httpapi.QueryResult
		res, err = c.Query(qctx, httpapi.QueryRequest{Kind: stewardKind, Case: fmt.Sprintf("CHAOS-PROBE-%d", op.ID),
			Basis: "testnet chaos: synthetic data", Offence: "thb", Purpose: "chaos probe of removed rows",
			Partners: []string{owner}, Values: values})
		cancel()
		if err == nil && res.Status != "done" {
			err = fmt.Errorf("query %s is %s", res.ID, res.Status)
		}
		op.Partners = res.Partners
	}
	w.hist.end(op, err)
	return op
}

// removals: every probe's last answer was a plain one, with no removed row
// among its hits and every held row.
func (c *checker) removals(probes []*probe) {
	for _, owner := range c.net.Agencies {
		var bad, notes []string
		asked, removed, held := 0, 0, 0
		for _, p := range probes {
			if p.owner != owner.Code {
				continue
			}
			if p.skipped != "" {
				notes = append(notes, p.querier+": "+p.skipped)
				continue
			}
			asked++
			removed, held = len(p.removed), len(p.held)
			last := p.ops[len(p.ops)-1]
			if !plain(last) {
				part := ""
				if len(last.Partners) == 1 {
					part = last.Partners[0].Outcome + " " + last.Partners[0].Reason
				}
				bad = append(bad, fmt.Sprintf("op %d %s→%s: no plain answer after %d attempts (%s %s%s)", last.ID, p.querier, p.owner, len(p.ops), last.Outcome, last.Err, part))
				continue
			}
			var got []string
			for _, h := range last.Partners[0].Hits {
				if h >= 0 && h < len(last.values) {
					got = append(got, last.values[h])
				}
			}
			sort.Strings(got)
			got = slices.Compact(got)
			nRemoved := 0
			for _, g := range got {
				if slices.Contains(p.removed, g) {
					nRemoved++
				}
			}
			nHeld := len(got) - nRemoved
			if nRemoved > 0 || nHeld != len(p.held) {
				bad = append(bad, fmt.Sprintf("op %d %s→%s (epoch %d, set version %d): %d of %d removed rows hit, %d of %d held rows",
					last.ID, p.querier, p.owner, last.Partners[0].Epoch, last.Partners[0].SetVersion, nRemoved, len(p.removed), nHeld, len(p.held)))
			}
		}
		detail := fmt.Sprintf("%d partners asked about %d removed and %d held rows of %s", asked, removed, held, stewardKind)
		if len(notes) > 0 {
			detail += " (not asked: " + fmt.Sprint(notes) + ")"
		}
		c.rep.Check(len(bad) == 0, owner.Code+": no removed row hits, every held import does (partners' queries once healed)", "%s%s", detail, evidence(bad))
	}
}

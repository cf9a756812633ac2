package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// approvalOffence is an offence that limits.yaml's approval section makes
// every local query citing it wait for an approver.
const approvalOffence = "organ_removal"

// Purposes of the approval entries (node/approve.go).
const (
	approvalPending  = "query pending approval"
	approvalApproved = "query approved"
	approvalRun      = "approved query run"
)

// approval runs one query that needs an approver, as an investigator and
// an approver would, each step an operation on a replica drawn at random:
// the investigator's query, recorded pending ("submit"); one time in four
// the investigator's attempt to run it before anyone approved it
// ("run-early", which the node must refuse); the approver's approval
// ("approve"); and the investigator's run of the approved query with the
// case key of the pending answer (a "query", checked as every query is).
func (w *workload) approval(_ context.Context, rng *rand.Rand, a *AgencyNode, client, ri int) {
	kind := w.kinds[rng.IntN(len(w.kinds))]
	var values []string
	for _, p := range w.net.Truth.Known(a.Code, kind) {
		values = append(values, p.Canonical)
	}
	if len(values) == 0 {
		return
	}
	inv, err := a.Client(ri, "investigator")
	if err != nil {
		return
	}
	sub := w.hist.begin(a.Code, client, "submit", a.Replicas[ri].ID)
	req := httpapi.QueryRequest{Kind: kind, Case: fmt.Sprintf("CHAOS-APPROVAL-%d", sub.ID), Basis: "testnet chaos: synthetic data",
		Offence: approvalOffence, Purpose: "chaos workload, approved", Values: values}
	sctx, cancel := context.WithTimeout(w.hard, opTimeout)
	defer cancel()
	pending, err := inv.Query(sctx, req)
	if err == nil && pending.Status != "pending" {
		err = fmt.Errorf("query %s needs an approver, yet it is %s: %w", pending.ID, pending.Status, errNotPending)
	}
	sub.QueryID = pending.ID
	sub.Partners = pending.Partners
	w.hist.end(sub, err)
	if err != nil {
		return
	}
	req.ID, req.CaseKey = pending.ID, pending.CaseKey
	if rng.IntN(4) == 0 {
		ri := rng.IntN(len(a.Replicas))
		if c, err := a.Client(ri, "investigator"); err == nil {
			early := w.hist.begin(a.Code, client, "run-early", a.Replicas[ri].ID)
			early.QueryID = pending.ID
			res, err := c.Query(sctx, req)
			early.Partners = res.Partners
			w.hist.end(early, err)
		}
	}
	ri = rng.IntN(len(a.Replicas))
	apc, err := a.Client(ri, "approver")
	if err != nil {
		return
	}
	ap := w.hist.begin(a.Code, client, "approve", a.Replicas[ri].ID)
	ap.QueryID = pending.ID
	actx, cancel2 := context.WithTimeout(w.hard, opTimeout)
	defer cancel2()
	rec, err := apc.Approve(actx, pending.ID)
	ap.Approver = rec.Approver
	w.hist.end(ap, err)
	if err != nil {
		return
	}
	ri = rng.IntN(len(a.Replicas))
	if inv, err = a.Client(ri, "investigator"); err != nil {
		return
	}
	run := w.hist.begin(a.Code, client, "query", a.Replicas[ri].ID)
	run.QueryKind, run.values, run.QueryID, run.Approver = kind, values, pending.ID, rec.Approver
	rctx, cancel3 := context.WithTimeout(w.hard, opTimeout)
	defer cancel3()
	res, err := inv.Query(rctx, req)
	if err == nil && res.Status != "done" {
		err = fmt.Errorf("approved query %s is %s", res.ID, res.Status)
	}
	run.Partners = res.Partners
	w.hist.end(run, err)
}

// errNotPending: a query that needs an approver was not recorded pending.
var errNotPending = fmt.Errorf("not pending")

// approvals: on each agency's final ledger, every query recorded pending
// (acknowledged) has its pending entry once; every acknowledged approval
// its approved entry once, after the pending one and naming the approver;
// every run entry an approved entry before it, and no query more than one
// run entry; every acknowledged run of an approved query its run entry,
// and its match_out entries the approver; and no run before the approval
// was acknowledged.
func (c *checker) approvals() {
	for _, a := range c.net.Agencies {
		l, ok := c.last[a.Code]
		if !ok {
			continue
		}
		type step struct {
			index    uint64
			approver string
		}
		steps := map[string][]step{} // purpose/query ID → entries
		for _, x := range l.lines {
			if x.Header.Type != format.TypeApproval || x.Body == nil {
				continue
			}
			k := x.Body.Purpose + "/" + x.Header.RequestID
			steps[k] = append(steps[k], step{x.Index, x.Body.Approver})
		}
		own := l.byRequest()
		var bad []string
		n := map[string]int{}
		// The acknowledged steps of each query, by kind: a later step
		// refused as if one of them had not happened read a stale record.
		acked := map[string]*Op{}
		for _, op := range c.agencyOps(a.Code) {
			if op.QueryID != "" && op.Outcome == OpOK {
				acked[op.Kind+"/"+op.QueryID] = op
			}
		}
		for _, op := range c.agencyOps(a.Code) {
			if op.QueryID == "" {
				continue
			}
			if op.Outcome == OpFailed {
				// The node's own words (node/approve.go) for a record it
				// does not hold, or holds still pending.
				if s := acked["submit/"+op.QueryID]; s != nil && s.Complete < op.Invoke && strings.Contains(op.Err, "no such query") {
					bad = append(bad, fmt.Sprintf("op %d (%s on %s): %s, after op %d recorded it pending", op.ID, op.Kind, op.Replica, op.Err, s.ID))
				}
				if ap := acked["approve/"+op.QueryID]; ap != nil && ap.Complete < op.Invoke && strings.Contains(op.Err, "still waits for an approver") {
					bad = append(bad, fmt.Sprintf("op %d (%s on %s): %s, after op %d approved it", op.ID, op.Kind, op.Replica, op.Err, ap.ID))
				}
			}
			pend, appr, run := steps[approvalPending+"/"+op.QueryID], steps[approvalApproved+"/"+op.QueryID], steps[approvalRun+"/"+op.QueryID]
			n[op.Kind+" "+op.Outcome]++
			switch {
			case op.Kind == "submit" && op.Outcome == OpOK:
				if len(pend) != 1 {
					bad = append(bad, fmt.Sprintf("op %d: query %s recorded pending, %d pending entries", op.ID, op.QueryID, len(pend)))
				}
				if len(run) > 1 {
					bad = append(bad, fmt.Sprintf("query %s: %d run entries", op.QueryID, len(run)))
				}
				if len(run) == 1 && (len(appr) == 0 || appr[0].index > run[0].index) {
					bad = append(bad, fmt.Sprintf("query %s: run entry %d without an approved entry before it", op.QueryID, run[0].index))
				}
			case op.Kind == "approve" && op.Outcome == OpOK:
				switch {
				case len(appr) != 1:
					bad = append(bad, fmt.Sprintf("op %d: approval of %s acknowledged, %d approved entries", op.ID, op.QueryID, len(appr)))
				case len(pend) != 1 || pend[0].index > appr[0].index:
					bad = append(bad, fmt.Sprintf("op %d: approved entry %d of %s not after its one pending entry", op.ID, appr[0].index, op.QueryID))
				case appr[0].approver != "user:"+op.Approver:
					bad = append(bad, fmt.Sprintf("op %d: approved entry of %s names %q, the approval %q", op.ID, op.QueryID, appr[0].approver, op.Approver))
				}
			case op.Kind == "run-early" && op.Outcome == OpOK:
				bad = append(bad, fmt.Sprintf("op %d: query %s ran before its approval was acknowledged", op.ID, op.QueryID))
			case op.Kind == "query" && op.Outcome == OpOK:
				if len(run) != 1 {
					bad = append(bad, fmt.Sprintf("op %d: approved query %s ran, %d run entries", op.ID, op.QueryID, len(run)))
				}
				for _, p := range op.Partners {
					for _, x := range own["match_out/"+p.RequestID] {
						if x.Body != nil && x.Body.Approver != "user:"+op.Approver {
							bad = append(bad, fmt.Sprintf("op %d: match_out %d of approved query %s names approver %q, not %q",
								op.ID, x.Index, op.QueryID, x.Body.Approver, op.Approver))
						}
					}
				}
			}
		}
		c.rep.Check(len(bad) == 0, a.Code+": every approval recorded, no query run without one",
			"%s%s%s", fmtCounts(n), whyFailed(c.agencyOps(a.Code), "submit", "run-early", "approve", "query"), evidence(bad))
	}
}

// whyFailed counts the errors of the operations of kinds that did not
// succeed, by reason ("" when none).
func whyFailed(ops []*Op, kinds ...string) string {
	n := map[string]int{}
	for _, op := range ops {
		if op.Kind == "query" && op.QueryID == "" {
			continue // not a run of an approved query
		}
		if op.Outcome != OpOK && op.Err != "" && slices.Contains(kinds, op.Kind) {
			n[op.Kind+": "+reasonClass(op.Err)]++
		}
	}
	if len(n) == 0 {
		return ""
	}
	return " (not ok: " + fmtCounts(n) + ")"
}

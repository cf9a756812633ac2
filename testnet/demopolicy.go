package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

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

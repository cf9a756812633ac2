package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

// queryArgs are the arguments of one `xborder query`.
type queryArgs struct {
	querier  *AgencyNode
	kind     string
	caseRef  string
	offence  string
	urgent   bool
	partners []string // empty: all
	file     string
	mode     string   // empty: the CLI's default (enforcement)
	reaches  []string // empty: every reach the mode may ask
}

// queryResult is what the demo reads of `xborder query --json`.
type queryResult struct {
	ID         string          `json:"id"`
	Mode       string          `json:"mode"`
	Kind       string          `json:"kind"`
	Values     int             `json:"values"`
	PaddedSize int             `json:"padded_size"`
	Partners   []partnerResult `json:"partners"`
}

// partnerResult is one partner's part of a query result.
type partnerResult struct {
	Agency      string `json:"agency"`
	RequestID   string `json:"request_id"`
	Outcome     string `json:"outcome"`
	Reason      string `json:"reason"`
	HitCount    int    `json:"hit_count"`
	Millis      int64  `json:"millis"`
	Handling    string `json:"handling"`    // a safeguarding query's handling code
	Instruction string `json:"instruction"` // and the partner's instruction
	Hits        []struct {
		Number int    `json:"number"` // the hit's number for a follow-up
		Line   int    `json:"line"`
		Value  string `json:"value"` // the querier's own input line
		Reach  string `json:"reach"` // open, victim or witness
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
	if q.mode != "" {
		args = append(args, "--mode", q.mode)
	}
	if len(q.reaches) > 0 {
		args = append(args, "--reaches", strings.Join(q.reaches, ","))
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

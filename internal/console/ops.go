package console

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

// maxQueryLines bounds the lines of one query's list.
const maxQueryLines = 100000

type queryView struct {
	Kinds []string
	Form  queryForm
	Error string
	Bad   []string // lines that are no identifier of the kind: line numbers and reasons, never the text
}

// queryForm is the new-query form as sent. Values never go back into a
// page but the result's own lines.
type queryForm struct {
	Kind, Region, Case, Basis, Offence, Purpose, Partners string
	Mode                                                  string // enforcement or safeguarding
	Urgent                                                bool
	ID, CaseKey                                           string // an approved pending query to run
}

func (c *Console) queryForm(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	fm := queryForm{Kind: "phone", Mode: modeEnforcement, ID: q.Get("id"), CaseKey: q.Get("case_key")}
	if q.Get("mode") == modeSafeguarding {
		fm.Mode = modeSafeguarding
	}
	c.render(w, r.Request, http.StatusOK, "query", "New query", r, queryView{Kinds: kindNames(), Form: fm})
	return nil
}

func kindNames() []string {
	var out []string
	for _, k := range ident.Kinds() {
		out = append(out, k.String())
	}
	return out
}

// Query modes (docs/victims.md).
const (
	modeEnforcement  = "enforcement"
	modeSafeguarding = "safeguarding"
)

// resultView is a query's answer: per partner, the hits as the
// investigator's own lines.
type resultView struct {
	Result   httpapi.QueryResult
	Partners []partnerView
	// FollowUp: the node sends follow-ups (httpapi.FollowupOutBackend),
	// so a partner's numbered hits come with a form to follow them up.
	FollowUp bool
}

type partnerView struct {
	httpapi.PartnerResult
	Hits []hitView // the investigator's lines that hit
}

// hitView is one hit: the investigator's line, and the reach of the
// record that matched (open, victim or witness).
type hitView struct {
	Line, Reach string
	Number      int // the hit's number for a follow-up (0: none kept)
}

// newResultView maps each partner's hits to lines, the investigator's
// lines in the order of the request's values.
func newResultView(res httpapi.QueryResult, lines []string) resultView {
	v := resultView{Result: res}
	for _, p := range res.Partners {
		pv := partnerView{PartnerResult: p}
		for j, i := range p.Hits {
			if i >= 0 && i < len(lines) {
				h := hitView{Line: lines[i]}
				if j < len(p.HitReaches) {
					h.Reach = p.HitReaches[j]
				}
				if j < len(p.HitNumbers) {
					h.Number = p.HitNumbers[j]
				}
				pv.Hits = append(pv.Hits, h)
			}
		}
		v.Partners = append(v.Partners, pv)
	}
	return v
}

// querySubmit canonicalises the pasted or uploaded list and runs the query
// through the node (the same call as POST /v1/queries): the node's policy
// decides, its ledger records. The values live only in this request.
func (c *Console) querySubmit(w http.ResponseWriter, r *request) error {
	f := r.PostForm
	fm := queryForm{Kind: f.Get("kind"), Region: strings.ToUpper(strings.TrimSpace(f.Get("region"))), Case: f.Get("case"),
		Basis: f.Get("basis"), Offence: f.Get("offence"), Purpose: f.Get("purpose"), Partners: f.Get("partners"),
		Mode: f.Get("mode"), Urgent: f.Get("urgent") != "", ID: f.Get("id"), CaseKey: f.Get("case_key")}
	again := func(msg string, bad []string) error {
		c.render(w, r.Request, http.StatusBadRequest, "query", "New query", r, queryView{Kinds: kindNames(), Form: fm, Error: msg, Bad: bad})
		return nil
	}
	k, err := ident.ParseKind(fm.Kind)
	if err != nil {
		return again(err.Error(), nil)
	}
	switch fm.Mode {
	case "":
		fm.Mode = modeEnforcement
	case modeEnforcement, modeSafeguarding:
	default:
		return again(fmt.Sprintf("mode %q: choose enforcement or safeguarding", fm.Mode), nil)
	}
	opt := ident.Options{Region: fm.Region}
	if err := opt.Validate(); err != nil {
		return again(fmt.Sprintf("region %q: %v: give an ISO 3166 alpha-2 country code, such as GB", fm.Region, err), nil)
	}
	var text io.Reader = strings.NewReader(f.Get("values"))
	if r.MultipartForm != nil {
		if fh := r.MultipartForm.File["file"]; len(fh) > 0 && fh[0].Size > 0 {
			fl, err := fh[0].Open()
			if err != nil {
				return fmt.Errorf("read the uploaded list: %v: %w", err, httpapi.ErrBadRequest)
			}
			defer fl.Close()
			text = fl
		}
	}
	req := httpapi.QueryRequest{ID: fm.ID, CaseKey: fm.CaseKey, Kind: k.String(), Case: fm.Case, Basis: fm.Basis,
		Offence: fm.Offence, Purpose: fm.Purpose, Urgent: fm.Urgent, Mode: fm.Mode}
	for _, p := range strings.Split(fm.Partners, ",") {
		if p = strings.ToUpper(strings.TrimSpace(p)); p != "" && p != "ALL" {
			req.Partners = append(req.Partners, p)
		}
	}
	var lines, bad []string
	sc := bufio.NewScanner(text)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if n > maxQueryLines {
			return again(fmt.Sprintf("the list has more than %d lines: split it", maxQueryLines), nil)
		}
		v, err := ident.Canonical(k, line, opt)
		if err != nil {
			bad = append(bad, fmt.Sprintf("line %d: not a valid %s", n, k))
			continue
		}
		req.Values = append(req.Values, v)
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return again(fmt.Sprintf("read the list: %v", err), nil)
	}
	switch {
	case len(bad) > 0:
		return again("some lines are no identifier of the kind chosen: correct or remove them", bad)
	case len(req.Values) == 0:
		return again("the list is empty: paste one identifier a line, or upload a file", nil)
	case fm.Case == "" || fm.Basis == "" || fm.Offence == "":
		return again("give the case reference, the legal basis and the offence", nil)
	}
	// The query runs in the background (it may take a partner's whole
	// deadline); the progress page follows it and shows the result.
	rn, err := c.runs.start(secretKey(r.id), lines, c.runQuery(r.user, req))
	if err != nil {
		return err
	}
	http.Redirect(w, r.Request, pageQuery.path+"/run/"+rn.id, http.StatusSeeOther)
	return nil
}

type queriesView struct {
	Queries   []httpapi.QueryRecord
	Pending   bool
	CanRefuse bool // the backend is a Refuser
}

// queriesPage lists the queries that needed an approver (the node keeps a
// record of those only), the user's own first.
func (c *Console) queriesPage(w http.ResponseWriter, r *request) error {
	qs, err := c.b.Queries(r.Context(), r.user, false)
	if err != nil {
		return err
	}
	var mine []httpapi.QueryRecord
	for _, q := range qs {
		if q.User == r.user.Name {
			mine = append(mine, q)
		}
	}
	c.render(w, r.Request, http.StatusOK, "queries", "My queries", r, queriesView{Queries: mine})
	return nil
}

func (c *Console) approvalsPage(w http.ResponseWriter, r *request) error {
	qs, err := c.b.Queries(r.Context(), r.user, true)
	if err != nil {
		return err
	}
	_, refuser := c.b.(Refuser)
	c.render(w, r.Request, http.StatusOK, "queries", "Pending approvals", r, queriesView{Queries: qs, Pending: true, CanRefuse: refuser})
	return nil
}

// approve signs off a pending query through the node (POST
// /v1/queries/{id}/approve): the node's policy decides and records.
func (c *Console) approve(w http.ResponseWriter, r *request) error {
	if _, err := c.b.Approve(r.Context(), r.user, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r.Request, pageApprovals.path, http.StatusSeeOther)
	return nil
}

// maxReason bounds a refusal's reason (a ledger field holds 1024 bytes).
const maxReason = 500

// refuse refuses a pending query with a reason through the node, when the
// node can (Refuser).
func (c *Console) refuse(w http.ResponseWriter, r *request) error {
	rf, ok := c.b.(Refuser)
	if !ok {
		return fmt.Errorf("this node cannot refuse a query yet: leave it pending or ask an admin: %w", httpapi.ErrNotFound)
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" || len(reason) > maxReason {
		return fmt.Errorf("give a reason of 1 to %d characters for the refusal: %w", maxReason, httpapi.ErrBadRequest)
	}
	if _, err := rf.Refuse(r.Context(), r.user, r.PathValue("id"), reason); err != nil {
		return err
	}
	http.Redirect(w, r.Request, pageApprovals.path, http.StatusSeeOther)
	return nil
}

type statusView struct {
	Status      httpapi.Status
	Policy      string
	Replicas    []httpapi.Replica
	ReplicasErr string
	Partners    []partnerCard
	PartnersErr string
	Groups      plot
	Data        httpapi.DataStats
	DataErr     string
	Classes     []string // subject classes with rows, for the holdings table
	Syncs       []syncRow
	SyncsErr    string
}

type syncRow struct {
	httpapi.SyncState
	Age string // since the last sync, rounded
}

// classOrder is the order of subject classes in the holdings table.
var classOrder = []string{"suspect", "unknown", "victim", "witness"}

type partnerCard struct {
	httpapi.Partner
	Valid bool
	Left  string
}

// statusPage shows the replica, its groups, the replicas and partners
// (each as far as the policy lets the user see them) and the policy.
func (c *Console) statusPage(w http.ResponseWriter, r *request) error {
	v := statusView{Status: c.b.Status(), Policy: c.b.PolicyVersion()}
	if err := c.b.Authorize(r.user, "manage_keys"); err != nil {
		v.ReplicasErr = err.Error()
	} else if v.Replicas, err = c.b.Replicas(r.Context()); err != nil {
		v.ReplicasErr = err.Error()
	}
	if err := c.b.Authorize(r.user, "manage_partners"); err != nil {
		v.PartnersErr = err.Error()
	} else if ps, err := c.b.Partners(r.Context()); err != nil {
		v.PartnersErr = err.Error()
	} else {
		now := c.cfg.Now()
		for _, p := range ps {
			left := p.Expires.Sub(now)
			v.Partners = append(v.Partners, partnerCard{Partner: p, Valid: left > 0 && !p.Replaced,
				Left: left.Round(time.Hour).String()})
		}
	}
	if st, err := c.b.DataStats(r.Context(), r.user); err != nil {
		v.DataErr = err.Error()
	} else {
		v.Data = st
		for _, cl := range classOrder {
			for _, k := range st.Kinds {
				if k.Classes[cl] > 0 {
					v.Classes = append(v.Classes, cl)
					break
				}
			}
		}
	}
	op, ok := c.b.(Operator)
	switch err := c.b.Authorize(r.user, "manage_partners"); {
	case !ok:
		v.SyncsErr = "this node does not report its copies of partners' sets"
	case err != nil:
		v.SyncsErr = err.Error()
	default:
		ss, err := op.SyncStates(r.Context())
		if err != nil {
			return err
		}
		now := c.cfg.Now()
		for _, s := range ss {
			row := syncRow{SyncState: s}
			if !s.Synced.IsZero() {
				row.Age = now.Sub(s.Synced).Round(time.Second).String()
			}
			v.Syncs = append(v.Syncs, row)
		}
	}
	var labels []string
	var sizes []int
	for _, g := range v.Status.Groups {
		labels = append(labels, g.Name)
		sizes = append(sizes, int(g.Size))
	}
	v.Groups = plot{Title: "Group sizes", Desc: "Bar chart of the number of entries in each Raft group's log on this replica."}
	for i := range labels {
		v.Groups.Table = append(v.Groups.Table, [2]string{labels[i], fmt.Sprint(sizes[i])})
	}
	v.Groups.SVG = drawChart(v.Groups.Title, v.Groups.Desc, labels, sizes, false)
	c.render(w, r.Request, http.StatusOK, "status", "Status", r, v)
	return nil
}

package console

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// The auditor's view of follow-ups (issue 23): every follow-up this
// agency sent (out), from the node's records as GET /v1/followups gives
// them to auditors (action read_followup), with the ledger entries that
// record each and, on its page, the partner's answer verified by the
// node; and every follow-up partners sent here (in), from the ledger's
// followup_in, followup_answer and denial entries that carry a
// follow-up ID, grouped by that ID. Neither side shows a tag: the
// records name hits by number, the ledger holds no tag.

// auditPurpose is the purpose of the ledger read the page makes.
const auditPurpose = "follow-ups (console)"

// inFollowup is a follow-up a partner sent here, as the ledger records it.
type inFollowup struct {
	ID      string
	Partner string
	Kind    string
	Mode    string
	Urgent  bool
	Named   uint64 // tags the partner named
	Matched uint64 // of them, tags matched to records here
	Basis   string
	Purpose string
	In      *ledger.Entry // followup_in, or the denial that refused it
	Answer  *ledger.Entry // followup_answer, when answered
}

// auditFollowupsView is the auditor's page.
type auditFollowupsView struct {
	Out      []httpapi.SentFollowup
	OutError string // why the sent follow-ups are not listed
	In       []inFollowup
}

// followupView is one sent follow-up's page; Audit: an auditor reads it
// (no "ask now", the ledger entries linked).
type followupView struct {
	httpapi.SentFollowup
	Audit bool
}

// auditFollowupsPage lists the follow-ups out and in.
func (c *Console) auditFollowupsPage(w http.ResponseWriter, r *request) error {
	var v auditFollowupsView
	if fb, err := c.outBackend(); err != nil {
		v.OutError = err.Error()
	} else if v.Out, err = fb.Followups(r.Context(), r.user); err != nil {
		if !errors.Is(err, httpapi.ErrForbidden) {
			return err
		}
		v.OutError = err.Error()
	}
	es, err := c.b.Entries(r.Context(), r.user, auditPurpose, ledger.Filter{
		Types: []ledger.Type{ledger.TypeFollowupIn, ledger.TypeFollowupAnswer, ledger.TypeDenial}})
	if err != nil {
		return err
	}
	v.In = inFollowups(es)
	c.render(w, r.Request, http.StatusOK, "auditfollowups", pageAuditFups.title, r, v)
	return nil
}

// inFollowups groups the entries that carry a follow-up ID by it, newest
// first.
func inFollowups(es []ledger.Entry) []inFollowup {
	byID := map[string]*inFollowup{}
	var order []string
	for i := range es {
		e := &es[i]
		if e.FollowupID == "" {
			continue
		}
		f, ok := byID[e.FollowupID]
		if !ok {
			f = &inFollowup{ID: e.FollowupID, Partner: e.Partner}
			byID[e.FollowupID] = f
			order = append(order, e.FollowupID)
		}
		switch e.Type {
		case ledger.TypeFollowupAnswer:
			f.Answer = e
		default: // followup_in or denial
			f.In = e
			f.Kind, f.Mode, f.Urgent, f.Named, f.Matched = e.Kind, e.Mode, e.Urgency > 0, e.Count, e.HitCount
			f.Basis, f.Purpose = e.Body.LegalBasis, e.Body.Purpose
		}
	}
	out := make([]inFollowup, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	sort.SliceStable(out, func(i, j int) bool { return inTime(out[i]).After(inTime(out[j])) })
	return out
}

func inTime(f inFollowup) (t time.Time) {
	if f.In != nil {
		return f.In.Time
	}
	return f.Answer.Time
}

// auditFollowupPage shows one sent follow-up with its verified answer to
// an auditor.
func (c *Console) auditFollowupPage(w http.ResponseWriter, r *request) error {
	fb, err := c.outBackend()
	if err != nil {
		return err
	}
	f, err := fb.SentFollowup(r.Context(), r.user, r.PathValue("id"), false)
	if err != nil {
		return err
	}
	c.render(w, r.Request, http.StatusOK, "followup", "Follow-up", r, followupView{SentFollowup: f, Audit: true})
	return nil
}

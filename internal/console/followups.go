package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/xborder/xborder/internal/httpapi"
)

// The investigator's follow-ups (issue 23, the querier's side): from a
// query's result, follow up some of a partner's hits (by their numbers),
// then read the partner's signed answer. They need a Backend that
// implements httpapi.FollowupOutBackend, the same calls as POST
// /v1/queries/{id}/followups, GET /v1/followups and GET
// /v1/followups/{id}: the node checks the policy (followup on the kind)
// and that the user is the one who asked, records and sends; it shows an
// answer only to its sender (and auditors).

// followupsView is the list of the user's follow-ups.
type followupsView struct {
	Followups []httpapi.SentFollowup
}

func (c *Console) outBackend() (httpapi.FollowupOutBackend, error) {
	fb, ok := c.b.(httpapi.FollowupOutBackend)
	if !ok {
		return nil, fmt.Errorf("this node sends no follow-ups: %w", httpapi.ErrNotFound)
	}
	return fb, nil
}

// followupsPage lists the user's follow-ups, newest first.
func (c *Console) followupsPage(w http.ResponseWriter, r *request) error {
	fb, err := c.outBackend()
	if err != nil {
		return err
	}
	fs, err := fb.Followups(r.Context(), r.user)
	if err != nil {
		return err
	}
	var mine []httpapi.SentFollowup
	for _, f := range fs {
		if f.User == r.user.Name {
			mine = append(mine, f)
		}
	}
	c.render(w, r.Request, http.StatusOK, "followups", "My follow-ups", r, followupsView{Followups: mine})
	return nil
}

// followupPage shows one follow-up and, once it came, the partner's
// verified answer; ?poll=1 asks the partner first.
func (c *Console) followupPage(w http.ResponseWriter, r *request) error {
	fb, err := c.outBackend()
	if err != nil {
		return err
	}
	f, err := fb.SentFollowup(r.Context(), r.user, r.PathValue("id"), r.URL.Query().Get("poll") == "1")
	if err != nil {
		return err
	}
	c.render(w, r.Request, http.StatusOK, "followup", "Follow-up", r, followupView{SentFollowup: f})
	return nil
}

// maxFollowupHits bounds the hits one follow-up names (the API's bound).
const maxFollowupHits = 64

// followupSubmit follows up the hits ticked on a query's result.
func (c *Console) followupSubmit(w http.ResponseWriter, r *request) error {
	fb, err := c.outBackend()
	if err != nil {
		return err
	}
	f := r.PostForm
	req := httpapi.FollowupRequest{Partner: strings.ToUpper(strings.TrimSpace(f.Get("partner"))),
		Basis: strings.TrimSpace(f.Get("basis")), Purpose: strings.TrimSpace(f.Get("purpose")), Urgent: f.Get("urgent") != ""}
	for _, h := range f["hit"] {
		n, err := strconv.Atoi(h)
		if err != nil || n < 1 {
			return fmt.Errorf("hit %q: give the hits' numbers as the result shows them (#1, #2, …): %w", h, httpapi.ErrBadRequest)
		}
		req.Hits = append(req.Hits, n)
	}
	switch {
	case len(req.Hits) == 0:
		return fmt.Errorf("tick the hits to follow up: %w", httpapi.ErrBadRequest)
	case len(req.Hits) > maxFollowupHits:
		return fmt.Errorf("a follow-up names at most %d hits: send several: %w", maxFollowupHits, httpapi.ErrBadRequest)
	case req.Basis == "" || req.Purpose == "":
		return fmt.Errorf("give the legal basis and the purpose of the follow-up: %w", httpapi.ErrBadRequest)
	}
	sent, err := fb.Followup(r.Context(), r.user, r.PathValue("id"), req)
	if err != nil {
		return err
	}
	http.Redirect(w, r.Request, pageFollowups.path+"/"+sent.ID, http.StatusSeeOther)
	return nil
}

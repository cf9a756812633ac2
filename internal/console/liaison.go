package console

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// The liaison officer's pages (issue 23): the inbox of partners'
// follow-ups, sorted by deadline, each answered (sharing the reference
// and contact of the records its hits name, under a handling code) or
// refused with a reason; and a plot of the deadlines met. They need a
// Backend that implements httpapi.FollowupInboxBackend, the same calls as
// GET /v1/followups/inbox and POST /v1/followups/inbox/{id}/answer: the
// node checks the policy (answer_followup on the kind), signs the answer
// and records it.

type inboxView struct {
	Items     []inboxItem
	Open      int
	Overdue   int
	Deadlines plot
	Handling  []string
}

type inboxItem struct {
	httpapi.FollowupInboxItem
	Left string // time left before the deadline, or how late
}

// handlingCodes are the handling codes an answer may carry.
var handlingCodes = []string{"H0", "H1", "H2", "H3"}

// inboxPage lists the follow-ups of the kinds the liaison may answer,
// earliest deadline first, with a plot of the deadlines met.
func (c *Console) inboxPage(w http.ResponseWriter, r *request) error {
	fb, ok := c.b.(httpapi.FollowupInboxBackend)
	if !ok {
		return fmt.Errorf("this node answers no follow-ups: %w", httpapi.ErrNotFound)
	}
	items, err := fb.FollowupInbox(r.Context(), r.user)
	if err != nil {
		return err
	}
	slices.SortStableFunc(items, func(a, b httpapi.FollowupInboxItem) int { return a.Deadline.Compare(b.Deadline) })
	now := c.cfg.Now()
	v := inboxView{Handling: handlingCodes}
	for _, it := range items {
		iv := inboxItem{FollowupInboxItem: it}
		if it.State == "open" {
			v.Open++
			if left := it.Deadline.Sub(now); left >= 0 {
				iv.Left = roughly(left) + " left"
			} else {
				iv.Left = roughly(-left) + " late"
				v.Overdue++
			}
		}
		v.Items = append(v.Items, iv)
	}
	v.Deadlines = deadlinePlot(items, now)
	c.render(w, r.Request, http.StatusOK, "inbox", "Follow-up inbox", r, v)
	return nil
}

// roughly says d for a person, rounded: days from two days on, else hours
// and minutes.
func roughly(d time.Duration) string {
	d = d.Round(time.Minute)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int((d+12*time.Hour)/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%d min", int(d/time.Minute))
}

// answerFollowup answers or refuses a follow-up through the node (POST
// /v1/followups/inbox/{id}/answer).
func (c *Console) answerFollowup(w http.ResponseWriter, r *request) error {
	fb, ok := c.b.(httpapi.FollowupInboxBackend)
	if !ok {
		return fmt.Errorf("this node answers no follow-ups: %w", httpapi.ErrNotFound)
	}
	f := r.PostForm
	var a httpapi.AnswerFollowup
	if f.Get("decision") == "refuse" {
		a = httpapi.AnswerFollowup{Refuse: true, Reason: strings.TrimSpace(f.Get("reason"))}
	} else {
		for _, s := range []string{"reference", "contact"} {
			if f.Get("share_"+s) != "" {
				a.Share = append(a.Share, s)
			}
		}
		a.Handling, a.Message = f.Get("handling"), strings.TrimSpace(f.Get("message"))
	}
	if err := a.Check(); err != nil {
		return err
	}
	if _, err := fb.AnswerFollowup(r.Context(), r.user, r.PathValue("id"), a); err != nil {
		return err
	}
	http.Redirect(w, r.Request, pageInbox.path, http.StatusSeeOther)
	return nil
}

// deadlinePlot draws, per UTC day of the deadline, the follow-ups
// answered by their deadline, those answered late, and those still open
// past it.
func deadlinePlot(items []httpapi.FollowupInboxItem, now time.Time) plot {
	series := []string{"met", "late", "overdue"}
	count := map[string][3]int{}
	for _, it := range items {
		d := it.Deadline.UTC().Format(time.DateOnly)
		n := count[d]
		switch {
		case it.State != "open" && !it.AnsweredAt.After(it.Deadline):
			n[0]++
		case it.State != "open":
			n[1]++
		case now.After(it.Deadline):
			n[2]++
		default:
			continue // open, not yet due
		}
		count[d] = n
	}
	days := make([]string, 0, len(count))
	for d := range count {
		days = append(days, d)
	}
	slices.Sort(days)
	if len(days) > maxBars {
		days = days[len(days)-maxBars:]
	}
	p := plot{Title: "Follow-up deadlines met", Desc: fmt.Sprintf("Grouped bar chart, per day (UTC) of the deadline, of the follow-ups answered by their deadline (met), answered after it (late) and still open past it (overdue), over %d days.", len(days))}
	vals := make([][]int, len(series))
	for i := range series {
		vals[i] = make([]int, len(days))
		for j, d := range days {
			vals[i][j] = count[d][i]
			p.Table = append(p.Table, [2]string{d + " " + series[i], fmt.Sprint(vals[i][j])})
		}
	}
	p.SVG = drawGrouped(p.Title, p.Desc, days, series, vals)
	return p
}

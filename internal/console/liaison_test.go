package console

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/console/consoletest"
	"github.com/xborder/xborder/internal/httpapi"
)

// lia is the fake's liaison officer.
var lia = consoletest.Users[5]

// TestInbox: the liaison's inbox lists partners' follow-ups earliest
// deadline first, with the records their hits name; an answer shares what
// the form ticks under its handling code, a refusal needs a reason, a form
// without the CSRF token changes nothing, and a decided follow-up cannot
// be decided again.
func TestInbox(t *testing.T) {
	h := newHarness(t, false, false)
	later := h.fake.AddFollowup("TH", "phone", time.Hour, 6*24*time.Hour, false, "GB-REF-3", "DS Lee, +44 20 7946 0003")
	late := h.fake.AddFollowup("FR", "email", 9*24*time.Hour, -2*time.Hour, false, "GB-REF-1", "DS Rao, +44 20 7946 0001")
	soon := h.fake.AddFollowup("TH", "phone", 2*time.Hour, 6*time.Hour, true, "GB-REF-2", "DS Kim, +44 20 7946 0002")
	cl := h.client(t)
	tok := h.session(t, cl, "lia")
	resp, body := h.do(t, cl, http.MethodGet, "/ui/inbox", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/inbox = %d\n%s", resp.StatusCode, body)
	}
	order := regexp.MustCompile(`<section class="followup [^"]*" id="f-([0-9a-f]+)"`).FindAllStringSubmatch(body, -1)
	var ids []string
	for _, m := range order {
		ids = append(ids, m[1])
	}
	if want := []string{late, soon, later}; !slices.Equal(ids, want) {
		t.Fatalf("inbox order %v; want earliest deadline first %v", ids, want)
	}
	if !strings.Contains(body, "3 open, ") || !strings.Contains(body, "1 past the deadline") || !strings.Contains(body, "GB-REF-2") ||
		!strings.Contains(body, "DS Kim, &#43;44 20 7946 0002") || !strings.Contains(body, "open (2h 00m late)") || !strings.Contains(body, "open (6 days left)") {
		t.Fatalf("inbox without the counts or the records' reference and contact:\n%s", body)
	}

	answer := func(id string, f url.Values) (int, string) {
		resp, body := h.do(t, cl, http.MethodPost, "/ui/inbox/"+id+"/answer", f)
		return resp.StatusCode, body
	}
	if code, _ := answer(soon, url.Values{"decision": {"share"}, "share_reference": {"1"}, "handling": {"H2"}}); code != http.StatusForbidden {
		t.Errorf("answer without the CSRF token = %d; want 403", code)
	}
	if code, body := answer(soon, url.Values{"csrf": {tok}, "decision": {"refuse"}}); code != http.StatusBadRequest || !strings.Contains(body, "needs a reason") {
		t.Errorf("refusal without a reason = %d; want 400 saying it needs one\n%s", code, body)
	}
	if code, body := answer(soon, url.Values{"csrf": {tok}, "decision": {"share"}, "handling": {"H2"}}); code != http.StatusBadRequest {
		t.Errorf("sharing nothing = %d; want 400\n%s", code, body)
	}
	items, _ := h.fake.FollowupInbox(t.Context(), lia)
	for _, it := range items {
		if it.State != "open" {
			t.Fatalf("follow-up %s is %s after refused forms; want open", it.ID, it.State)
		}
	}
	if code, body := answer(soon, url.Values{"csrf": {tok}, "decision": {"share"}, "share_reference": {"1"}, "handling": {"H3"}, "message": {"call first"}}); code != http.StatusSeeOther {
		t.Fatalf("share = %d; want 303\n%s", code, body)
	}
	if code, _ := answer(late, url.Values{"csrf": {tok}, "decision": {"refuse"}, "reason": {"outside the agreement"}}); code != http.StatusSeeOther {
		t.Fatalf("refuse = %d; want 303", code)
	}
	if code, _ := answer(late, url.Values{"csrf": {tok}, "decision": {"refuse"}, "reason": {"again"}}); code != http.StatusConflict {
		t.Errorf("refusing a refused follow-up = %d; want 409", code)
	}
	items, _ = h.fake.FollowupInbox(t.Context(), lia)
	byID := map[string]httpapi.FollowupInboxItem{}
	for _, it := range items {
		byID[it.ID] = it
	}
	s := byID[soon]
	if s.State != "shared" || s.Answer == nil || s.Answer.Handling != "H3" || s.Answer.Message != "call first" ||
		len(s.Answer.Shared) != 1 || s.Answer.Shared[0].Reference != "GB-REF-2" || s.Answer.Shared[0].Contact != "" || s.Actor != "user:lia" {
		t.Errorf("shared follow-up %+v (answer %+v); want the reference only, under H3, by lia", s, s.Answer)
	}
	if r := byID[late]; r.State != "refused" || r.Answer == nil || r.Answer.Reason != "outside the agreement" {
		t.Errorf("refused follow-up %+v; want refused with the reason", r)
	}
	_, body = h.do(t, cl, http.MethodGet, "/ui/inbox", nil)
	if !strings.Contains(body, "1 open.") || strings.Contains(body, `action="/ui/inbox/`+soon) || !strings.Contains(body, "by user:lia: shared") {
		t.Errorf("inbox after the answers: want 1 open, no form for the answered one, the answer shown\n%s", body)
	}
	if strings.Contains(h.log.String(), "GB-REF-2") || strings.Contains(h.log.String(), "7946") {
		t.Errorf("a record's reference or contact is in the console's log:\n%s", h.log.String())
	}
}

// TestDeadlinePlot: per day of the deadline, the follow-ups answered by
// it, after it, and still open past it; open ones not yet due are not
// counted.
func TestDeadlinePlot(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	d1, d2 := now.Add(-30*time.Hour), now.Add(-2*time.Hour)
	items := []httpapi.FollowupInboxItem{
		{State: "shared", Deadline: d1, AnsweredAt: d1.Add(-time.Hour)},
		{State: "refused", Deadline: d1, AnsweredAt: d1.Add(time.Minute)},
		{State: "open", Deadline: d2},
		{State: "shared", Deadline: d2, AnsweredAt: d2},
		{State: "open", Deadline: now.Add(time.Hour)},
	}
	p := deadlinePlot(items, now)
	got := map[string]string{}
	for _, r := range p.Table {
		got[r[0]] = r[1]
	}
	want := map[string]string{
		"2026-12-04 met": "1", "2026-12-04 late": "1", "2026-12-04 overdue": "0",
		"2026-12-05 met": "1", "2026-12-05 late": "0", "2026-12-05 overdue": "1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("table[%s] = %q; want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("table %v; want exactly %v", got, want)
	}
	if !strings.Contains(string(p.SVG), `<title id="t-follow-up-deadlines-met">`) {
		t.Errorf("plot without its title:\n%s", p.SVG)
	}
}

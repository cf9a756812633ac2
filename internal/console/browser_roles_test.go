package console

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xborder/xborder/internal/console/consoletest"
	"github.com/xborder/xborder/internal/httpapi"
)

// TestBrowserSteward: the steward signs in to the status page and sees
// the holdings per kind and subject class and the sets served with their
// versions, is told that the replicas need another action, and on the
// policy page sees the budgets but is told why the history is not shown.
func TestBrowserSteward(t *testing.T) {
	h := newHarness(t, false, false)
	b := browser(t)
	tb := tab(t, b, h)
	if err := tb.SignIn(consoletest.Token("sam")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#holdings tbody tr:nth-child(2)"); !strings.Contains(got, "email\t310\t110\t200\t") {
		t.Fatalf("the email holdings row reads %q; want 310 rows: 110 suspect, 200 unknown", got)
	}
	if got := text(t, tb, "#sets tbody tr:nth-child(2)"); !strings.Contains(got, "phone\tvictim\t3\t1") || !strings.Contains(got, "5b0e77c2") {
		t.Fatalf("the second set served reads %q; want phone's victim set, epoch 3, version 1", got)
	}
	if got := text(t, tb, "#replicas-not-shown"); !strings.Contains(got, "manage_keys") {
		t.Fatalf("the replicas section reads %q; want why they are not shown (manage_keys)", got)
	}
	if n, err := tb.Count(`nav a[href="/ui/ledger"]`); err != nil || n != 0 {
		t.Fatalf("the steward's menu has %d links to the ledger (%v); want none", n, err)
	}
	if err := tb.Do(chromedp.Click(chromedp.CSS(`nav a[href="/ui/policy"]`)), chromedp.WaitVisible(chromedp.CSS("#budgets"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#history-not-shown"); !strings.Contains(got, "manage_policy") {
		t.Fatalf("the policy history reads %q; want why it is not shown (manage_policy)", got)
	}
}

// TestBrowserAuditorFollowups: the auditor opens the follow-ups page and
// sees the one ivy sent, then its page with the partner's answer and the
// ledger entries, and the one a partner sent here, refused by the liaison.
func TestBrowserAuditorFollowups(t *testing.T) {
	h := newHarness(t, false, false)
	ctx := t.Context()
	ivy, lia := consoletest.Users[0], httpapi.User{Name: "lia", Role: "liaison"}
	res, err := h.fake.Query(ctx, ivy, httpapi.QueryRequest{Kind: "phone", Case: "OP-9", Basis: "b", Offence: "thb", Purpose: "p",
		Values: []string{"+447700900123"}})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := h.fake.Followup(ctx, ivy, res.ID, httpapi.FollowupRequest{Partner: consoletest.Partner, Hits: []int{1}, Basis: "b", Purpose: "p"})
	if err != nil {
		t.Fatal(err)
	}
	h.fake.AnswerSent(sent.ID)
	in := h.fake.AddFollowup("FR", "email", time.Hour, 24*time.Hour, false, "GB-REF-9", "DS Rao")
	if _, err := h.fake.AnswerFollowup(ctx, lia, in, httpapi.AnswerFollowup{Refuse: true, Reason: "no agreement"}); err != nil {
		t.Fatal(err)
	}
	tb := tab(t, browser(t), h)
	if err := tb.SignIn(consoletest.Token("ada")); err != nil {
		t.Fatal(err)
	}
	if err := tb.Do(chromedp.Click(chromedp.CSS(`nav a[href="/ui/audit/followups"]`)), chromedp.WaitVisible(chromedp.CSS("#audit-in"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#audit-in tbody tr:first-child"); !strings.Contains(got, in) || !strings.Contains(got, "denied by lia") {
		t.Fatalf("the received follow-up reads %q; want %s refused by lia", got, in)
	}
	if err := tb.Do(chromedp.Click(chromedp.CSS(`#audit-out a[href="/ui/audit/followups/`+sent.ID+`"]`)), chromedp.WaitVisible(chromedp.CSS("#followup-answer"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#shared tbody"); !strings.Contains(got, "TH-AHTD-001") {
		t.Fatalf("the answer shares %q; want TH-AHTD-001", got)
	}
	if n, err := tb.Count("#followup-entries a"); err != nil || n == 0 {
		t.Fatalf("%d links to the follow-up's ledger entries (%v); want some", n, err)
	}
}

package console

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xborder/xborder/internal/console/consoletest"
)

// These tests drive a real browser (Debian's chromium) through the
// console, one per role, each doing the role's main task and checking what
// the page shows. Without a browser they say so and skip; CI installs one
// (.ci/run).

// browser starts a headless chromium for t, or skips t when the machine
// has none (fails instead when XBORDER_REQUIRE_BROWSER is set, as in CI).
func browser(t *testing.T) *consoletest.Browser {
	t.Helper()
	b, err := consoletest.NewBrowser(t.Context())
	if errors.Is(err, consoletest.ErrNoBrowser) && os.Getenv("XBORDER_REQUIRE_BROWSER") != "" {
		t.Fatalf("NO BROWSER, and XBORDER_REQUIRE_BROWSER is set (as .ci/run sets it): install chromium (apt-get install chromium) or set XBORDER_CHROMIUM: %v", err)
	}
	if errors.Is(err, consoletest.ErrNoBrowser) {
		t.Skipf("NO BROWSER: this test drives chromium and none is installed, so the console's browser test did not run: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func tab(t *testing.T, b *consoletest.Browser, h *harness) *consoletest.Tab {
	t.Helper()
	tb, err := b.Tab(h.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	return tb
}

func text(t *testing.T, tb *consoletest.Tab, sel string) string {
	t.Helper()
	s, err := tb.Text(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBrowserAuditorVerifiesProof(t *testing.T) {
	h := newHarness(t, false, false)
	b := browser(t)
	tb := tab(t, b, h)
	if err := tb.SignIn(consoletest.Token("ada")); err != nil {
		t.Fatal(err)
	}
	// The auditor lands on the ledger, filters it by type, and opens an
	// entry from the list.
	if err := tb.Fill([][2]string{{"#type", "match_out"}, {"#purpose", "audit 2026/7"}}, ".filters button", "#entries"); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#entries caption"); !strings.HasSuffix(got, "entries") || got == "0 entries" {
		t.Fatalf("ledger list caption %q; want some entries", got)
	}
	if err := tb.Do(chromedp.Click(chromedp.CSS("#entries tbody tr:first-child a")), chromedp.WaitVisible(chromedp.CSS("#proof-result"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#proof-result"); !strings.HasPrefix(got, "Verified:") {
		t.Fatalf("proof of a true entry shows %q; want Verified", got)
	}
	reads := h.fake.Reads()
	if len(reads) == 0 || reads[len(reads)-1].Purpose != "audit 2026/7" || reads[len(reads)-1].User != "ada" {
		t.Fatalf("the entry's read was not recorded with the auditor and purpose: %+v", reads)
	}

	// A replica that serves a wrong proof is caught on the page.
	h.fake.Tamper(true)
	if err := tb.Do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#proof-result"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#proof-result"); !strings.HasPrefix(got, "Failed:") {
		t.Fatalf("proof of a tampered entry shows %q; want Failed", got)
	}
	if got := text(t, tb, "ol.checks li.failed"); !strings.Contains(got, "inclusion proof") {
		t.Fatalf("the failed check reads %q; want the inclusion proof's", got)
	}
}

func TestBrowserQueryApproval(t *testing.T) {
	h := newHarness(t, true, false)
	b := browser(t)
	ivy, alan := tab(t, b, h), tab(t, b, h)
	if err := ivy.SignIn(consoletest.Token("ivy")); err != nil {
		t.Fatal(err)
	}
	ask := [][2]string{{"#values", "+66 81 234 5678\n+44 7700 900999"}, {"#case", "OP-7"}, {"#basis", "MSA 2015 s.1"}, {"#offence", "thb"}}
	if err := ivy.Fill(ask, "main form button[type=submit]", "#query-status"); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ivy, "#query-status"); got != "pending" {
		t.Fatalf("a query that needs an approver shows status %q; want pending", got)
	}
	id, key := text(t, ivy, "#query-id"), text(t, ivy, "#case-key")

	// The approver sees it, with no identifier, and approves it.
	if err := alan.SignIn(consoletest.Token("alan")); err != nil {
		t.Fatal(err)
	}
	row := text(t, alan, "main table tbody tr")
	if !strings.Contains(row, id) || !strings.Contains(row, "OP-7") || strings.Contains(row, "5678") {
		t.Fatalf("pending row %q; want the query %s and its case, without identifiers", row, id)
	}
	if err := alan.Do(chromedp.Click(chromedp.CSS("main table button.approve")), chromedp.WaitVisible(chromedp.CSS("main p[role=status]"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, alan, "main p[role=status]"); got != "No queries." {
		t.Fatalf("after approval the pending list shows %q; want No queries.", got)
	}

	// The approval moves the query on: the investigator runs it and sees
	// the hit as the line she typed.
	if err := ivy.Open("/ui/query?id="+id+"&case_key="+key, "#values"); err != nil {
		t.Fatal(err)
	}
	if err := ivy.Fill(ask, "main form button[type=submit]", "#query-status"); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ivy, "#query-status"); got != "done" {
		t.Fatalf("the approved query shows status %q; want done", got)
	}
	if got := text(t, ivy, "tr.outcome-hits ul.hits"); !strings.HasPrefix(got, "+66 81 234 5678") || strings.Contains(got, "900999") {
		t.Fatalf("hits shown %q; want the investigator's line +66 81 234 5678", got)
	}
	if got := text(t, ivy, "tr.outcome-denied"); !strings.Contains(got, "no agreement") {
		t.Fatalf("refusal shown %q; want its reason", got)
	}
}

// TestBrowserProgress: the investigator asks; while a partner has not
// answered, the page lists each partner with its state and reloads itself
// (no script); once all have, it shows the result.
func TestBrowserProgress(t *testing.T) {
	h := newHarness(t, false, false)
	b := browser(t)
	ivy := tab(t, b, h)
	if err := ivy.SignIn(consoletest.Token("ivy")); err != nil {
		t.Fatal(err)
	}
	release := h.fake.Hold()
	defer release()
	ask := [][2]string{{"#values", "+44 7700 900123\n+44 7700 900999"}, {"#case", "OP-7"}, {"#basis", "MSA 2015 s.1"}, {"#offence", "thb"}}
	if err := ivy.Fill(ask, "main form button[type=submit]", "#progress"); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ivy, "#progress-status"); !strings.HasPrefix(got, "1 of 2 partners have answered") {
		t.Fatalf("progress reads %q; want 1 of 2 answered", got)
	}
	if got := text(t, ivy, "#progress tbody tr:first-child"); !strings.Contains(got, "FR") || !strings.Contains(got, "asking") {
		t.Fatalf("FR's row reads %q; want asking", got)
	}
	if got := text(t, ivy, "#progress tbody tr:nth-child(2)"); !strings.Contains(got, "TH") || !strings.Contains(got, "hits") {
		t.Fatalf("TH's row reads %q; want its hits", got)
	}
	release()
	// The page reloads itself into the result.
	if got := text(t, ivy, "tr.outcome-hits ul.hits"); !strings.HasPrefix(got, "+44 7700 900123") || strings.Contains(got, "900999") {
		t.Fatalf("hits shown %q; want the investigator's line +44 7700 900123", got)
	}
}

func TestBrowserAdminStatus(t *testing.T) {
	h := newHarness(t, false, false)
	b := browser(t)
	tb := tab(t, b, h)
	if err := tb.SignIn(consoletest.Token("root")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#policy-version"); got != h.fake.PolicyVersion() {
		t.Fatalf("policy shown %q; want %q", got, h.fake.PolicyVersion())
	}
	// Holdings per kind and subject class.
	if got := text(t, tb, "#holdings tbody tr:first-child"); !strings.Contains(got, "phone\t1200\t700\t420\t80") {
		t.Fatalf("the phone holdings row reads %q; want 1200 rows: 700 suspect, 420 unknown, 80 victim", got)
	}
	// The copies of partners' sets, each with its last sync.
	if got := text(t, tb, "#syncs tbody tr:nth-child(2)"); !strings.Contains(got, "phone") || !strings.Contains(got, "open") || strings.Contains(got, "not since") {
		t.Fatalf("the status page's second copy reads %q; want TH's phone set, synced", got)
	}
	// The policy page: budgets against their limits, plotted, and the
	// policy's history.
	if err := tb.Do(chromedp.Click(chromedp.CSS(`nav a[href="/ui/policy"]`)), chromedp.WaitVisible(chromedp.CSS("#budgets"))); err != nil {
		t.Fatal(err)
	}
	bs, err := h.fake.Budgets(t.Context(), consoletest.Users[3], "")
	if err != nil {
		t.Fatal(err)
	}
	first := fmt.Sprintf("%d%d%d%%", bs[0].Used, bs[0].Limit, percent(int64(bs[0].Used), bs[0].Limit))
	if got := strings.ReplaceAll(text(t, tb, "#budgets tbody tr:first-child"), "\t", ""); !strings.Contains(got, first) {
		t.Fatalf("first budget row %q; want %s used of %d", got, fmt.Sprint(bs[0].Used), bs[0].Limit)
	}
	bars, err := tb.Count(`#t-budget-use-today ~ rect:not([fill="none"])`)
	if err != nil {
		t.Fatal(err)
	}
	if bars != len(bs) {
		t.Fatalf("the budget plot draws %d bars; want %d", bars, len(bs))
	}
	if got := text(t, tb, "#policy-history tbody tr:first-child"); !strings.Contains(got, "v1-3f2a") {
		t.Fatalf("newest policy entry %q; want version v1-3f2a", got)
	}
	// Sign-out ends the session: the next page asks to sign in again.
	if err := tb.Do(chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	if err := tb.Open("/ui/status", "#token"); err != nil {
		t.Fatalf("after sign-out the status page did not ask to sign in: %v", err)
	}
}

// TestBrowserLiaison: the liaison signs in to the inbox, sees the
// follow-up with the earliest deadline first, shares its record's
// reference and contact, and sees the answer in place of the form.
func TestBrowserLiaison(t *testing.T) {
	h := newHarness(t, false, false)
	h.fake.AddFollowup("TH", "phone", time.Hour, 6*24*time.Hour, false, "GB-REF-3", "DS Lee")
	first := h.fake.AddFollowup("FR", "email", 9*24*time.Hour, -2*time.Hour, false, "GB-REF-1", "DS Rao")
	b := browser(t)
	tb := tab(t, b, h)
	if err := tb.SignIn(consoletest.Token("lia")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "section.followup:first-of-type h2"); !strings.HasPrefix(got, "FR · email") {
		t.Fatalf("first follow-up %q; want FR's, the earliest deadline", got)
	}
	if got := text(t, tb, "#inbox-status"); !strings.Contains(got, "2 open, 1 past the deadline") {
		t.Fatalf("inbox status %q; want 2 open, 1 past the deadline", got)
	}
	if got := text(t, tb, "#f-"+first+" table.hits tbody"); !strings.Contains(got, "GB-REF-1") || !strings.Contains(got, "DS Rao") {
		t.Fatalf("FR's follow-up names %q; want record GB-REF-1, contact DS Rao", got)
	}
	if err := tb.Do(chromedp.Click(chromedp.CSS("#f-"+first+" button.share")), chromedp.WaitVisible(chromedp.CSS("#f-"+first+" p.ok"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tb, "#f-"+first+" p.ok"); !strings.Contains(got, "by user:lia: shared") || !strings.Contains(got, "under H2") {
		t.Fatalf("answer shown %q; want shared by lia under H2", got)
	}
	items, err := h.fake.FollowupInbox(t.Context(), lia)
	if err != nil {
		t.Fatal(err)
	}
	if items[0].ID != first || items[0].Answer == nil || len(items[0].Answer.Shared) != 1 || items[0].Answer.Shared[0].Contact != "DS Rao" {
		t.Fatalf("the node's record of FR's follow-up = %+v; want the reference and contact shared", items[0])
	}
	if got := text(t, tb, "#inbox-status"); !strings.HasPrefix(got, "1 open") {
		t.Fatalf("inbox status after the answer %q; want 1 open", got)
	}
}

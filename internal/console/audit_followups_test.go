package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAuditFollowups: the auditor's page lists every follow-up sent (by
// any investigator, with its ledger entries) and every one received (the
// ledger's followup_in and followup_answer under one ID, with the
// liaison's decision); a sent one's page shows the partner's verified
// answer without "ask now"; the listing is recorded as a ledger read; no
// other role sees the page.
func TestAuditFollowups(t *testing.T) {
	h := newHarness(t, false, false)
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	_, code, body := h.ask(t, ivy, queryValues(tok, "+44 7700 900123", "+66 81 234 5678"))
	if code != http.StatusOK {
		t.Fatalf("query = %d\n%s", code, body)
	}
	qid := regexp.MustCompile(`id="query-id">([^<]+)<`).FindStringSubmatch(body)[1]
	resp, body := h.do(t, ivy, http.MethodPost, "/ui/queries/"+qid+"/followups",
		url.Values{"csrf": {tok}, "partner": {"TH"}, "hit": {"1"}, "basis": {"2006/960/JHA art. 4"}, "purpose": {"reach the case officer"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("follow-up = %d\n%s", resp.StatusCode, body)
	}
	out := strings.TrimPrefix(resp.Header.Get("Location"), "/ui/followups/")
	h.fake.AnswerSent(out)

	in := h.fake.AddFollowup("FR", "email", time.Hour, 6*24*time.Hour, true, "GB-REF-9", "DS Rao")
	lia := h.client(t)
	ltok := h.session(t, lia, "lia")
	if resp, body := h.do(t, lia, http.MethodPost, "/ui/inbox/"+in+"/answer",
		url.Values{"csrf": {ltok}, "decision": {"refuse"}, "reason": {"no agreement for e-mail"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("liaison's refusal = %d\n%s", resp.StatusCode, body)
	}

	ada := h.client(t)
	h.session(t, ada, "ada")
	reads := len(h.fake.Reads())
	resp, body = h.do(t, ada, http.MethodGet, "/ui/audit/followups", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("auditor's follow-ups = %d\n%s", resp.StatusCode, body)
	}
	outRow := regexp.MustCompile(`(?s)<tr><td><a href="/ui/audit/followups/` + out + `">.*?</tr>`).FindString(body)
	if outRow == "" || !strings.Contains(outRow, "<td>ivy</td>") || !strings.Contains(outRow, "<td>TH</td>") || !strings.Contains(outRow, "#1") ||
		!strings.Contains(outRow, "answered") {
		t.Errorf("the sent follow-up's row: want ivy's, to TH, hit #1, answered:\n%s", body)
	}
	inRow := regexp.MustCompile(`(?s)<tr><td><code>` + in + `</code>.*?</tr>`).FindString(body)
	if inRow == "" || !strings.Contains(inRow, "<td>FR</td>") || !strings.Contains(inRow, "enforcement, urgent") ||
		!strings.Contains(inRow, "<td>1 / 1</td>") || !strings.Contains(inRow, "denied</a> by lia") {
		t.Errorf("the received follow-up's row: want FR's, urgent, 1 named and matched, refused by lia:\n%s", body)
	}
	if got := h.fake.Reads(); len(got) != reads+1 || got[len(got)-1].Purpose != auditPurpose {
		t.Errorf("ledger reads %v; want one more, for %q", got[reads:], auditPurpose)
	}
	_, body = h.do(t, ada, http.MethodGet, "/ui/audit/followups/"+out, nil)
	if !strings.Contains(body, "Shared under H2") || !strings.Contains(body, `<th scope="row">#1</th><td>TH-AHTD-001</td>`) ||
		!strings.Contains(body, `id="followup-entries"`) || strings.Contains(body, "poll=1") {
		t.Errorf("the auditor's follow-up page: want the answer, the ledger entries and no ask-now link:\n%s", body)
	}
	for _, name := range []string{"ivy", "lia", "root", "sam", "alan"} {
		cl := h.client(t)
		h.session(t, cl, name)
		if resp, _ := h.do(t, cl, http.MethodGet, "/ui/audit/followups", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s on the auditor's follow-ups = %d; want 403", name, resp.StatusCode)
		}
	}
}

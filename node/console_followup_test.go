package node

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// TestConsoleFollowups walks step 2 through both agencies' consoles:
// GB's investigator asks TH on GB's console, follows up one hit and,
// urgently, the other from the result page; TH's liaison sees the urgent
// one first with the records' references, shares one record's reference
// under H3 and refuses the other with a reason; GB's investigator reads
// both answers on her follow-ups' pages (another investigator may not),
// and TH's ledger holds the liaison's followup_answer entries. An
// investigator may not open the inbox; GB's auditor sees both follow-ups
// sent (with their ledger entries and the answer), TH's auditor both
// received (with the liaison's decisions); no reference or contact
// reaches a log line.
func TestConsoleFollowups(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb, th := startAgency(t, "GB", 1, logs), startAgency(t, "TH", 1, logs)
	for _, a := range []*agency{gb, th} {
		applyConsoleFollowupPolicy(t, a)
	}
	gb.pin(th)
	th.pin(gb)
	phones := canon(t, "phone", "TH", "081 234 0001", "081 234 0002")
	holdRows(t, th, "phone", "TH", reachOpen, []httpapi.Row{
		{Line: 1, Value: phones[0], Ref: "TH-CASE-1", Contact: "AHTD desk 1", Handling: "H2"},
		{Line: 2, Value: phones[1], Ref: "TH-CASE-2", Contact: "AHTD desk 2", Handling: "H2"},
	})
	q, owner := gb.leader(), th.leader()
	add := func(n *Node, name, role string) string {
		tok, err := n.users.AddUser(ctx, "user:admin", name, role)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	ivanTok, irisTok, gbAudTok := add(q, "ivan", "investigator"), add(q, "iris", "investigator"), add(q, "ada", "auditor")
	liaTok, thInvTok, thAudTok := add(owner, "lia", "liaison"), add(owner, "tom", "investigator"), add(owner, "aud", "auditor")
	signIn := func(n *Node, tok string) *browser {
		b := newBrowser(t, n.APIURL())
		if resp, body := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {b.csrf("/ui/signin")}, "token": {tok}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("sign in = %d:\n%s", resp.StatusCode, body)
		}
		return b
	}

	// GB asks TH on its console; the result numbers TH's two hits.
	inv := signIn(q, ivanTok)
	form := url.Values{"csrf": {inv.csrf("/ui/query")}, "kind": {"phone"}, "case": {"OP-FU"}, "basis": {"Art. 10"},
		"offence": {"thb"}, "purpose": {"p"}, "partners": {"TH"}, "values": {strings.Join(phones, "\n")}}
	resp, body := inv.result(inv.do(http.MethodPost, "/ui/query", form))
	qid := regexp.MustCompile(`id="query-id">([^<]+)<`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || qid == nil || !strings.Contains(body, `name="hit" value="1"`) || !strings.Contains(body, `name="hit" value="2"`) {
		t.Fatalf("console query = %d; want TH's two hits numbered for a follow-up:\n%s", resp.StatusCode, body)
	}
	hitOf := func(phone string) string { // the number the page gives the line
		m := regexp.MustCompile(`name="hit" value="(\d)"> #\d ` + regexp.QuoteMeta(strings.ReplaceAll(phone, "+", "&#43;"))).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no hit number for %s on the result", phone)
		}
		return m[1]
	}
	follow := func(hit string, urgent bool) string {
		f := url.Values{"csrf": {csrfField.FindStringSubmatch(body)[1]}, "partner": {"TH"}, "hit": {hit},
			"basis": {"2006/960/JHA art. 4"}, "purpose": {"reach the case officer"}}
		if urgent {
			f.Set("urgent", "on")
		}
		resp, page := inv.do(http.MethodPost, "/ui/queries/"+qid[1]+"/followups", f)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.Path, "/ui/followups/") || !strings.Contains(page, `id="followup-status">open`) {
			t.Fatalf("follow-up of hit %s = %d at %s; want its page, open:\n%s", hit, resp.StatusCode, resp.Request.URL.Path, page)
		}
		return resp.Request.URL.Path
	}
	standard, urgent := follow(hitOf(phones[0]), false), follow(hitOf(phones[1]), true)
	sid, uid := strings.TrimPrefix(standard, "/ui/followups/"), strings.TrimPrefix(urgent, "/ui/followups/")

	// TH's liaison: the urgent one first, with the records.
	if resp, _ := signIn(owner, thInvTok).do(http.MethodGet, "/ui/inbox", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an investigator opens the inbox: %d; want 403", resp.StatusCode)
	}
	lia := signIn(owner, liaTok)
	var inbox string
	poll(t, "TH's inbox holds both follow-ups", time.Minute, func() bool {
		_, inbox = lia.do(http.MethodGet, "/ui/inbox", nil)
		return strings.Contains(inbox, "2 open")
	})
	order := regexp.MustCompile(`id="f-([0-9a-f]{32})"`).FindAllStringSubmatch(inbox, -1)
	if len(order) != 2 || order[0][1] != uid || order[1][1] != sid {
		t.Fatalf("inbox order %q; want the urgent follow-up %s first, then %s:\n%s", order, uid, sid, inbox)
	}
	if !strings.Contains(inbox, "TH-CASE-1") || !strings.Contains(inbox, "TH-CASE-2") {
		t.Fatalf("inbox without the records' references:\n%s", inbox)
	}
	csrf := csrfField.FindStringSubmatch(inbox)[1]
	if resp, page := lia.do(http.MethodPost, "/ui/inbox/"+uid+"/answer", url.Values{"csrf": {csrf}, "decision": {"share"},
		"share_reference": {"1"}, "handling": {"H3"}, "message": {"call the desk"}}); resp.StatusCode != http.StatusOK || strings.Contains(page, `action="/ui/inbox/`+uid) {
		t.Fatalf("share on the console = %d; want the inbox without a form for it:\n%s", resp.StatusCode, page)
	}
	if resp, page := lia.do(http.MethodPost, "/ui/inbox/"+sid+"/answer", url.Values{"csrf": {csrf}, "decision": {"refuse"},
		"reason": {"case closed"}}); resp.StatusCode != http.StatusOK || !strings.Contains(page, "0 open.") {
		t.Fatalf("refuse on the console = %d:\n%s", resp.StatusCode, page)
	}
	for id, want := range map[string]ledger.Outcome{uid: ledger.OutcomeOK, sid: ledger.OutcomeDenied} {
		es := followupAnswerEntries(t, owner, id)
		if len(es) != 1 || es[0].Outcome != want || es[0].Body.Actor != "user:lia" {
			t.Errorf("TH's followup_answer entries of %s = %+v; want one %s by lia", id, es, want)
		}
	}

	// GB's investigator reads the answers; another investigator may not.
	var page string
	poll(t, "GB has TH's answer to the urgent follow-up", time.Minute, func() bool {
		_, page = inv.do(http.MethodGet, urgent+"?poll=1", nil)
		return strings.Contains(page, `id="followup-status">answered`)
	})
	if !strings.Contains(page, "Shared under H3") || !strings.Contains(page, "<td>TH-CASE-2</td><td></td>") || !strings.Contains(page, "call the desk") {
		t.Errorf("GB's page of the urgent follow-up: want TH-CASE-2's reference only, under H3:\n%s", page)
	}
	poll(t, "GB has TH's refusal", time.Minute, func() bool {
		_, page = inv.do(http.MethodGet, standard+"?poll=1", nil)
		return strings.Contains(page, "Refused: case closed")
	})
	if resp, _ := signIn(q, irisTok).do(http.MethodGet, urgent, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another investigator opens ivan's follow-up: %d; want 403", resp.StatusCode)
	}

	// GB's auditor sees both follow-ups ivan sent, with their entries,
	// and the answer; TH's auditor both received, with lia's decisions.
	_, page = signIn(q, gbAudTok).do(http.MethodGet, "/ui/audit/followups", nil)
	for _, id := range []string{sid, uid} {
		row := regexp.MustCompile(`(?s)<tr[^>]*><td><a href="/ui/audit/followups/` + id + `">.*?</tr>`).FindString(page)
		if !strings.Contains(row, "<td>ivan</td>") || !strings.Contains(row, "answered") || !strings.Contains(row, `href="/ui/ledger/`) {
			t.Errorf("GB's auditor: the row of %s %q; want ivan's, answered, with its ledger entries:\n%s", id, row, page)
		}
	}
	_, page = signIn(q, gbAudTok).do(http.MethodGet, "/ui/audit/followups/"+uid, nil)
	if !strings.Contains(page, "Shared under H3") || !strings.Contains(page, "<td>TH-CASE-2</td>") || strings.Contains(page, "poll=1") {
		t.Errorf("GB's auditor's page of the urgent follow-up: want the answer, no ask-now link:\n%s", page)
	}
	_, page = signIn(owner, thAudTok).do(http.MethodGet, "/ui/audit/followups", nil)
	for id, want := range map[string]string{uid: "ok</a> by user:lia under H3", sid: "denied</a> by user:lia"} {
		row := regexp.MustCompile(`(?s)<tr><td><code>` + id + `</code>.*?</tr>`).FindString(page)
		if !strings.Contains(row, "<td>GB</td>") || !strings.Contains(row, want) {
			t.Errorf("TH's auditor: the row of %s %q; want from GB, %q:\n%s", id, row, want, page)
		}
	}
	mustNotContain(t, "the logs", logs.Bytes(), map[string][][]byte{"a record's reference": {[]byte("TH-CASE-2")}, "a contact": {[]byte("AHTD desk")}})
}

// applyConsoleFollowupPolicy puts the follow-up policy in force at a, and
// lets auditors read every follow-up (read_followup), as the example
// policy does.
func applyConsoleFollowupPolicy(t *testing.T, a *agency) {
	t.Helper()
	first := a.leader()
	v, err := first.policy.ApplyPolicy(context.Background(), "user:admin", policy.Files{PolicyName: "policy.cedar",
		Policy: []byte(followupPolicy + matchAdmins + `
@id("auditors-followup") permit (principal in Role::"auditor", action == Action::"read_followup", resource is Kind);
`), LimitsName: "limits.yaml", Limits: []byte(strings.Replace(followupLimits, "RULE", "{window: 30d}", 1))}, first.users.policyManagers)
	if err != nil {
		t.Fatalf("%s ApplyPolicy: %v", a.cc, err)
	}
	for _, n := range a.running() {
		until(t, a.cc+" policy in force", func() bool { return n.Policy().Version() == v })
	}
}

// followupAnswerEntries returns n's followup_answer entries of follow-up
// id (hex).
func followupAnswerEntries(t *testing.T, n *Node, id string) []ledger.Entry {
	t.Helper()
	es, err := n.Audit().Entries(context.Background(), ledger.Filter{Types: []ledger.Type{ledger.TypeFollowupAnswer}})
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Entry
	for _, e := range es {
		if e.FollowupID == id {
			out = append(out, e)
		}
	}
	return out
}

package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// TestConsoleLiaison: TH's liaison answers GB's follow-ups on TH's
// console, through the node: the inbox lists them earliest deadline first
// (an urgent one before a standard one) with the records' references;
// sharing the reference only under H3 signs and records the answer (a
// followup_answer entry with the liaison as actor and the signed answer's
// digest) and GB's poll gets exactly that; a refusal with a reason is
// recorded as denied; an investigator may not open the inbox.
func TestConsoleLiaison(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb, th := startAgency(t, "GB", 1, logs), startAgency(t, "TH", 1, logs)
	for _, a := range []*agency{gb, th} {
		applyFollowupPolicy(t, a, "30d")
	}
	gb.pin(th)
	th.pin(gb)
	phones := canon(t, "phone", "TH", "081 234 0001", "081 234 0002")
	holdRows(t, th, "phone", "TH", reachOpen, []httpapi.Row{
		{Line: 1, Value: phones[0], Ref: "TH-CASE-1", Contact: "AHTD desk 1", Handling: "H2"},
		{Line: 2, Value: phones[1], Ref: "TH-CASE-2", Contact: "AHTD desk 2", Handling: "H2"},
	})
	owner := th.leader()
	liaTok, err := owner.users.AddUser(ctx, "user:admin", "lia", "liaison")
	if err != nil {
		t.Fatal(err)
	}
	ivanTok, err := owner.users.AddUser(ctx, "user:admin", "ivan", "investigator")
	if err != nil {
		t.Fatal(err)
	}
	rid, epoch, hits := matchTags(t, gb, th, "phone", exchange.ModeEnforcement, []string{reachOpen}, phones)
	if len(hits[reachOpen]) != 2 {
		t.Fatalf("hits = %+v; want both numbers", hits)
	}
	standard := newFollowup("TH", rid, "phone", epoch, exchange.ModeEnforcement, followupTagsOf(reachOpen, hits[reachOpen][:1]))
	urgent := newFollowup("TH", rid, "phone", epoch, exchange.ModeEnforcement, followupTagsOf(reachOpen, hits[reachOpen][1:]))
	urgent.Urgent = true
	for _, f := range []exchange.Followup{standard, urgent} {
		if _, err := sendFollowup(gb, th, f); err != nil {
			t.Fatalf("Followup: %v", err)
		}
	}
	sid, uid := hex.EncodeToString(standard.ID[:]), hex.EncodeToString(urgent.ID[:])

	inv := newBrowser(t, owner.APIURL())
	inv.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {inv.csrf("/ui/signin")}, "token": {ivanTok.Token}})
	if resp, _ := inv.do(http.MethodGet, "/ui/inbox", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an investigator opens the inbox: %d; want 403", resp.StatusCode)
	}

	b := newBrowser(t, owner.APIURL())
	resp, body := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {b.csrf("/ui/signin")}, "token": {liaTok.Token}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/inbox" {
		t.Fatalf("the liaison signs in = %d at %s; want the inbox:\n%s", resp.StatusCode, resp.Request.URL.Path, body)
	}
	order := regexp.MustCompile(`id="f-([0-9a-f]{32})"`).FindAllStringSubmatch(body, -1)
	if len(order) != 2 || order[0][1] != uid || order[1][1] != sid {
		t.Fatalf("inbox order %q; want the urgent follow-up %s first, then %s:\n%s", order, uid, sid, body)
	}
	if !strings.Contains(body, "TH-CASE-1") || !strings.Contains(body, "TH-CASE-2") || !strings.Contains(body, "2 open.") {
		t.Fatalf("inbox without the records' references or the count:\n%s", body)
	}

	csrf := csrfField.FindStringSubmatch(body)[1]
	resp, body = b.do(http.MethodPost, "/ui/inbox/"+uid+"/answer", url.Values{"csrf": {csrf}, "decision": {"share"},
		"share_reference": {"1"}, "handling": {"H3"}, "message": {"call the desk"}})
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `action="/ui/inbox/`+uid) {
		t.Fatalf("share on the console = %d; want the inbox without a form for it:\n%s", resp.StatusCode, body)
	}
	st := pollFollowup(t, gb, th, urgent)
	if a := st.Answer; a == nil || a.Refused || a.Handling != "H3" || a.Message != "call the desk" || len(a.Shared) != 1 ||
		a.Shared[0].Reference != "TH-CASE-2" || a.Shared[0].Contact != "" {
		t.Fatalf("GB's poll = %+v; want TH-CASE-2's reference only, under H3", st.Answer)
	}
	es := followupEntries(t, owner, urgent.ID)
	if last := es[len(es)-1]; last.Type != ledger.TypeFollowupAnswer || last.Outcome != ledger.OutcomeOK || last.Body.Actor != "user:lia" ||
		last.Digest != ledger.Digest(sha256.Sum256(st.Signed)) {
		t.Errorf("TH's last entry of the urgent follow-up = %+v; want lia's followup_answer with the answer's digest", last)
	}

	resp, body = b.do(http.MethodPost, "/ui/inbox/"+sid+"/answer", url.Values{"csrf": {csrf}, "decision": {"refuse"}, "reason": {"case closed"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "0 open.") {
		t.Fatalf("refuse on the console = %d:\n%s", resp.StatusCode, body)
	}
	if a := pollFollowup(t, gb, th, standard).Answer; a == nil || !a.Refused || a.Reason != "case closed" {
		t.Errorf("GB's poll of the refused follow-up = %+v; want refused, case closed", a)
	}
	es = followupEntries(t, owner, standard.ID)
	if last := es[len(es)-1]; last.Type != ledger.TypeFollowupAnswer || last.Outcome != ledger.OutcomeDenied || last.Body.Actor != "user:lia" {
		t.Errorf("TH's last entry of the refused follow-up = %+v; want lia's denied followup_answer", last)
	}
	mustNotContain(t, "the logs", logs.Bytes(), map[string][][]byte{"a record's reference": {[]byte("TH-CASE-2")}, "a contact": {[]byte("AHTD desk")}})
}

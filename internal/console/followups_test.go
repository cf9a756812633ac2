package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestFollowups: the result of a query offers to follow up a partner's
// numbered hits; the follow-up goes through the node (hit numbers, basis,
// purpose), and its page shows it open, then the partner's answer; a
// follow-up without hits or a legal basis, or without the CSRF token, is
// refused; other roles cannot follow up.
func TestFollowups(t *testing.T) {
	h := newHarness(t, false, false)
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	_, code, body := h.ask(t, ivy, queryValues(tok, "+44 7700 900123", "+33 6 00 00 00 01", "+66 81 234 5678"))
	if code != http.StatusOK {
		t.Fatalf("query = %d\n%s", code, body)
	}
	qid := regexp.MustCompile(`id="query-id">([^<]+)<`).FindStringSubmatch(body)[1]
	form := regexp.MustCompile(`(?s)<form method="post" action="/ui/queries/` + qid + `/followups" class="followup" id="followup-TH">.*?</form>`).FindString(body)
	if form == "" || !strings.Contains(form, `name="hit" value="1"> #1 &#43;44 7700 900123`) || !strings.Contains(form, `value="2"> #2 &#43;66 81 234 5678`) {
		t.Fatalf("result without a follow-up form for TH's two numbered hits:\n%s", body)
	}
	if strings.Contains(body, `id="followup-FR"`) {
		t.Error("a follow-up form for FR, which refused")
	}
	post := func(cl *http.Client, f url.Values) (*http.Response, string) {
		return h.do(t, cl, http.MethodPost, "/ui/queries/"+qid+"/followups", f)
	}
	good := url.Values{"csrf": {tok}, "partner": {"TH"}, "hit": {"2"}, "basis": {"2006/960/JHA art. 4"}, "purpose": {"reach the case officer"}}
	for name, change := range map[string]func(url.Values){
		"no hit":    func(f url.Values) { f.Del("hit") },
		"no basis":  func(f url.Values) { f.Del("basis") },
		"a bad hit": func(f url.Values) { f.Set("hit", "x") },
		"not a hit": func(f url.Values) { f.Set("hit", "3") },
		"no CSRF":   func(f url.Values) { f.Del("csrf") },
	} {
		f := url.Values{}
		for k, v := range good {
			f[k] = append([]string(nil), v...)
		}
		change(f)
		want := http.StatusBadRequest
		if name == "no CSRF" {
			want = http.StatusForbidden
		}
		if resp, body := post(ivy, f); resp.StatusCode != want {
			t.Errorf("follow-up with %s = %d; want %d\n%s", name, resp.StatusCode, want, body)
		}
	}
	alan := h.client(t)
	atok := h.session(t, alan, "alan")
	f := url.Values{"csrf": {atok}, "partner": {"TH"}, "hit": {"1"}, "basis": {"b"}, "purpose": {"p"}}
	if resp, _ := post(alan, f); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the approver follows up = %d; want 403", resp.StatusCode)
	}

	resp, body := post(ivy, good)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/followups/") {
		t.Fatalf("follow-up = %d to %q; want 303 to its page\n%s", resp.StatusCode, loc, body)
	}
	id := strings.TrimPrefix(loc, "/ui/followups/")
	_, body = h.do(t, ivy, http.MethodGet, loc, nil)
	if !strings.Contains(body, `id="followup-status">open`) || !strings.Contains(body, "#2") || !strings.Contains(body, "?poll=1") {
		t.Fatalf("follow-up page: want open, hit #2, a link to ask now\n%s", body)
	}
	_, body = h.do(t, ivy, http.MethodGet, "/ui/followups", nil)
	if !strings.Contains(body, `href="/ui/followups/`+id+`"`) {
		t.Fatalf("my follow-ups does not list %s\n%s", id, body)
	}
	h.fake.AnswerSent(id)
	_, body = h.do(t, ivy, http.MethodGet, loc, nil)
	if !strings.Contains(body, `id="followup-status">answered`) || !strings.Contains(body, "Shared under H2") ||
		!strings.Contains(body, `<th scope="row">#2</th><td>TH-AHTD-002</td>`) {
		t.Fatalf("the answered follow-up's page: want the shared reference of hit #2\n%s", body)
	}
	if strings.Contains(h.log.String(), "TH-AHTD") {
		t.Errorf("the answer's reference is in the console's log")
	}
}

package console

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/console/consoletest"
)

// runDeadline bounds the wait for a console query's result (a loaded
// machine is slow).
const runDeadline = time.Minute

// refreshing: a page that reloads itself (the progress page).
var refreshing = regexp.MustCompile(`<meta http-equiv="refresh"`)

// ask posts the new-query form, follows the redirect to the query's page
// and reloads it, as the browser's meta refresh does, until it stops
// reloading; it returns the run page's path, its last status and body.
// A form the console refuses comes back as the POST's answer.
func (h *harness) ask(t *testing.T, cl *http.Client, form url.Values) (string, int, string) {
	t.Helper()
	resp, body := h.do(t, cl, http.MethodPost, "/ui/query", form)
	if resp.StatusCode != http.StatusSeeOther {
		return "", resp.StatusCode, body
	}
	path := resp.Header.Get("Location")
	if !strings.HasPrefix(path, "/ui/query/run/") {
		t.Fatalf("POST /ui/query redirects to %q; want the query's page", path)
	}
	code, body := h.wait(t, cl, path)
	return path, code, body
}

// wait reloads the run page at path until it stops reloading.
func (h *harness) wait(t *testing.T, cl *http.Client, path string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(runDeadline)
	for {
		resp, body := h.do(t, cl, http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusOK || !refreshing.MatchString(body) {
			return resp.StatusCode, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("the query at %s still runs after %v:\n%s", path, runDeadline, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hitShown reports whether the result page body shows line as a hit: a
// list item of the line as typed (html/template writes + as &#43;), with
// its hit number or without.
func hitShown(body, line string) bool {
	esc := "<li>" + strings.ReplaceAll(line, "+", "&#43;")
	return strings.Contains(body, esc+"</li>") || strings.Contains(body, esc+` <span class="hitno">`)
}

// TestProgress: a query runs in the background; its page lists each
// partner with its state as answers come, reloads itself (a meta refresh,
// no script) while one is missing, and shows the result, the hit as the
// investigator's line, once all have answered. No other session sees it,
// and sign-out forgets it and its lines.
func TestProgress(t *testing.T) {
	h := newHarness(t, false, false)
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	release := h.fake.Hold()
	defer release()
	resp, body := h.do(t, ivy, http.MethodPost, "/ui/query", queryValues(tok, "+44 7700 900123", "+33 6 00 00 00 01"))
	path := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(path, "/ui/query/run/") {
		t.Fatalf("POST /ui/query = %d to %q; want 303 to the query's page\n%s", resp.StatusCode, path, body)
	}
	// TH answers at once; FR is held: the page shows TH's outcome and FR
	// being asked, and reloads itself.
	row := func(body, agency string) string {
		return regexp.MustCompile(`<tr class="outcome-([a-z_]+)"><th scope="row">` + agency + `</th>`).FindStringSubmatch(body + `<tr class="outcome-none"><th scope="row">` + agency + `</th>`)[1]
	}
	deadline := time.Now().Add(runDeadline)
	for {
		_, body = h.do(t, ivy, http.MethodGet, path, nil)
		if strings.Contains(body, `id="progress"`) && row(body, "TH") == "hits" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the progress page never showed TH's answer:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := row(body, "FR"); got != "asking" || !refreshing.MatchString(body) || !strings.Contains(body, "1 of 2 partners have answered") {
		t.Fatalf("progress page with FR held: FR %q, refresh %v; want FR asking, the page reloading, 1 of 2 answered\n%s", got, refreshing.MatchString(body), body)
	}
	if strings.Contains(body, "900123") {
		t.Fatalf("the progress page shows a line before the result:\n%s", body)
	}
	// Another user, and another session of the same user, do not see it.
	ada := h.client(t)
	h.session(t, ada, "ada")
	if resp, _ := h.do(t, ada, http.MethodGet, path, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the auditor opens ivy's query page: %d; want 403", resp.StatusCode)
	}
	ivy2 := h.client(t)
	h.session(t, ivy2, "ivy")
	if resp, _ := h.do(t, ivy2, http.MethodGet, path, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ivy's other session opens the query page: %d; want 404", resp.StatusCode)
	}
	release()
	code, body := h.wait(t, ivy, path)
	if code != http.StatusOK || !hitShown(body, "+44 7700 900123") || strings.Contains(body, "00 00 00 01") ||
		!strings.Contains(body, "no agreement for kind phone") {
		t.Fatalf("query page once done = %d; want the result: the hit as ivy's line, FR's refusal\n%s", code, body)
	}
	if n := len(h.c.runs.snapshot()); n != 1 {
		t.Fatalf("%d runs held; want 1", n)
	}
	resp, _ = h.do(t, ivy, http.MethodPost, "/ui/signout", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out = %d", resp.StatusCode)
	}
	if held := fmt.Sprint(h.c.runs.snapshot()); strings.Contains(held, "900123") {
		t.Errorf("after sign-out the console still holds the query's lines: %s", held)
	}
}

// TestRunLimits: a session runs at most maxRunsPerSession queries at once;
// a finished run is forgotten runTTL after it ends.
func TestRunLimits(t *testing.T) {
	now := time.Now()
	h := newHarness(t, false, false)
	h.c.runs.now = func() time.Time { return now }
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	release := h.fake.Hold()
	var paths []string
	for i := range maxRunsPerSession {
		resp, body := h.do(t, ivy, http.MethodPost, "/ui/query", queryValues(tok, "+44 7700 900123"))
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("query %d = %d; want 303\n%s", i+1, resp.StatusCode, body)
		}
		paths = append(paths, resp.Header.Get("Location"))
	}
	if resp, body := h.do(t, ivy, http.MethodPost, "/ui/query", queryValues(tok, "+44 7700 900123")); resp.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(body, "too many queries are running") {
		t.Fatalf("query %d while %d run = %d; want 503 saying too many run\n%s", maxRunsPerSession+1, maxRunsPerSession, resp.StatusCode, body)
	}
	release()
	for _, p := range paths {
		if code, body := h.wait(t, ivy, p); code != http.StatusOK || !strings.Contains(body, `id="query-status">done<`) {
			t.Fatalf("%s = %d; want the result\n%s", p, code, body)
		}
	}
	now = now.Add(runTTL + time.Second)
	if resp, _ := h.do(t, ivy, http.MethodGet, paths[0], nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a result %v after it ended = %d; want 404", runTTL, resp.StatusCode)
	}
	if n := len(h.c.runs.snapshot()); n != 0 {
		t.Errorf("%d runs held %v after they ended; want 0", n, runTTL)
	}
}

// TestQueryMode: the form's mode reaches the node; a safeguarding query
// waits for an approver, and once approved and run shows a victim hit
// with its reach and the partner's handling instruction; a mode that is
// neither is refused.
func TestQueryMode(t *testing.T) {
	h := newHarness(t, false, false)
	h.fake.HoldVictims("+447700900777")
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	if _, body := h.do(t, ivy, http.MethodGet, "/ui/query", nil); !strings.Contains(body, `value="safeguarding"`) || !strings.Contains(body, `name="urgent"`) {
		t.Fatalf("the new-query form has no mode or urgency field:\n%s", body)
	}
	f := queryValues(tok, "+44 7700 900777", "+44 7700 900123")
	f.Set("mode", "surveillance")
	if _, code, body := h.ask(t, ivy, f); code != http.StatusBadRequest || !strings.Contains(body, "choose enforcement or safeguarding") {
		t.Fatalf("mode surveillance = %d; want 400\n%s", code, body)
	}
	// Enforcement: the victim's record is not asked.
	f.Set("mode", "enforcement")
	if _, code, body := h.ask(t, ivy, f); code != http.StatusOK || strings.Contains(body, "900777") || !strings.Contains(body, `id="query-mode">enforcement<`) {
		t.Fatalf("enforcement query = %d; want the open hit only\n%s", code, body)
	}
	f.Set("mode", "safeguarding")
	_, code, body := h.ask(t, ivy, f)
	id := regexp.MustCompile(`id="query-id">([^<]+)<`).FindStringSubmatch(body)
	key := regexp.MustCompile(`id="case-key">([^<]+)<`).FindStringSubmatch(body)
	if code != http.StatusOK || !strings.Contains(body, `id="query-status">pending<`) || id == nil || key == nil {
		t.Fatalf("safeguarding query = %d; want pending for an approver\n%s", code, body)
	}
	qs, _ := h.fake.Queries(t.Context(), consoletest.Users[0], true)
	if len(qs) != 1 || qs[0].Mode != "safeguarding" {
		t.Fatalf("pending records %+v; want one safeguarding query", qs)
	}
	alan := h.client(t)
	atok := h.session(t, alan, "alan")
	if _, body := h.do(t, alan, http.MethodGet, "/ui/approvals", nil); !strings.Contains(body, "<td>safeguarding</td>") {
		t.Fatalf("the approver does not see the mode:\n%s", body)
	}
	if resp, _ := h.do(t, alan, http.MethodPost, "/ui/approvals/"+id[1]+"/approve", url.Values{"csrf": {atok}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve = %d", resp.StatusCode)
	}
	f.Set("id", id[1])
	f.Set("case_key", key[1])
	_, code, body = h.ask(t, ivy, f)
	if code != http.StatusOK || !regexp.MustCompile(`<li>&#43;44 7700 900777 (<span class="hitno">#\d+</span> )?<strong class="reach">victim record`).MatchString(body) ||
		!strings.Contains(body, "Handling H2: contact the partner") {
		t.Fatalf("approved safeguarding query = %d; want the victim hit with its reach and handling\n%s", code, body)
	}
}

package console

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/xborder/xborder/internal/console/consoletest"
)

// TestNoIdentifierLeaks runs a console query and looks for its
// identifiers, as typed and canonical, in the console's log, the session
// store, the link store and the ledger.
func TestNoIdentifierLeaks(t *testing.T) {
	for _, approval := range []bool{false, true} {
		t.Run(fmt.Sprintf("approval=%v", approval), func(t *testing.T) {
			h := newHarness(t, approval, false)
			ivy := h.client(t)
			tok := h.session(t, ivy, "ivy")
			typed := []string{"+66 81 234 5678", "+44 7700 900999"}
			canonical := []string{"+66812345678", "+447700900999"}
			_, code, body := h.ask(t, ivy, queryValues(tok, typed...))
			if code != http.StatusOK {
				t.Fatalf("query = %d\n%s", code, body)
			}
			if approval {
				id := regexp.MustCompile(`id="query-id">([^<]+)<`).FindStringSubmatch(body)
				key := regexp.MustCompile(`id="case-key">([^<]+)<`).FindStringSubmatch(body)
				if id == nil || key == nil {
					t.Fatalf("pending answer without query ID or case key:\n%s", body)
				}
				alan := h.client(t)
				atok := h.session(t, alan, "alan")
				if resp, body := h.do(t, alan, http.MethodPost, "/ui/approvals/"+id[1]+"/approve", url.Values{"csrf": {atok}}); resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("approve = %d\n%s", resp.StatusCode, body)
				}
				f := queryValues(tok, typed...)
				f.Set("id", id[1])
				f.Set("case_key", key[1])
				_, code, body = h.ask(t, ivy, f)
				if code != http.StatusOK {
					t.Fatalf("approved query = %d\n%s", code, body)
				}
			}
			// The hit comes back as the investigator's own line.
			// html/template writes + as &#43;.
			if !hitShown(body, typed[0]) || hitShown(body, typed[1]) {
				t.Fatalf("result page does not show exactly the line that hit:\n%s", body)
			}
			if !strings.Contains(h.log.String(), "signed in") {
				t.Fatalf("the console logged no sign-in: the log looked at is not the console's\n%s", h.log.String())
			}
			sessions := fmt.Sprintf("%+v %+v", h.c.sessions.snapshot(), h.c.links.m)
			for _, v := range append(typed, canonical...) {
				for _, digits := range []string{v, strings.ReplaceAll(v, " ", "")} {
					if strings.Contains(h.log.String(), digits) {
						t.Errorf("identifier %q in the console's log", digits)
					}
					if strings.Contains(sessions, digits) {
						t.Errorf("identifier %q in the session store", digits)
					}
					if h.fake.Contains(digits) {
						t.Errorf("identifier %q in the ledger", digits)
					}
				}
			}
			if strings.Contains(h.log.String(), consoletest.Token("ivy")) || strings.Contains(sessions, consoletest.Token("ivy")) {
				t.Error("the API token is in the log or the session store")
			}
			// The result page's lines live in the run until sign-out
			// (or runTTL), and nowhere else.
			if resp, _ := h.do(t, ivy, http.MethodPost, "/ui/signout", url.Values{"csrf": {tok}}); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign out = %d", resp.StatusCode)
			}
			runs := fmt.Sprint(h.c.runs.snapshot())
			for _, v := range append(typed, canonical...) {
				if strings.Contains(runs, v) {
					t.Errorf("identifier %q held by the console after sign-out", v)
				}
			}
		})
	}
}

// TestQueryUpload: a list uploaded as a file is asked like a pasted one,
// and a line that is no identifier is named by its number, not its text.
func TestQueryUpload(t *testing.T) {
	h := newHarness(t, false, false)
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	post := func(list string) (int, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range queryValues(tok) {
			if k != "values" {
				mw.WriteField(k, v[0])
			}
		}
		fw, err := mw.CreateFormFile("file", "list.txt")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(fw, list)
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/ui/query", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := ivy.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusSeeOther {
			return h.wait(t, ivy, resp.Header.Get("Location"))
		}
		return resp.StatusCode, string(b)
	}
	code, body := post("+44 7700 900123\n+33 6 00 00 00 01\n")
	if code != http.StatusOK || !hitShown(body, "+44 7700 900123") {
		t.Fatalf("uploaded query = %d; want 200 with the hit +44 7700 900123\n%s", code, body)
	}
	code, body = post("+44 7700 900123\nnot-a-phone-4242\n")
	if code != http.StatusBadRequest || !strings.Contains(body, "line 2: not a valid phone") || strings.Contains(body, "not-a-phone") {
		t.Fatalf("uploaded list with a bad line = %d; want 400 naming line 2 without its text\n%s", code, body)
	}
}

// TestRefuse: the approver refuses a pending query with a reason when the
// node can refuse; without a reason the form is refused; with a node that
// cannot, the page offers approval only and the route answers 404.
func TestRefuse(t *testing.T) {
	h := newHarness(t, true, false)
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	if _, code, body := h.ask(t, ivy, queryValues(tok, "+66 81 234 5678")); code != http.StatusOK {
		t.Fatalf("query = %d\n%s", code, body)
	}
	alan := h.client(t)
	atok := h.session(t, alan, "alan")
	if _, body := h.do(t, alan, http.MethodGet, "/ui/approvals", nil); !strings.Contains(body, `action="/ui/approvals/q-1/refuse"`) {
		t.Fatalf("approvals page without a refuse form for q-1:\n%s", body)
	}
	if resp, _ := h.do(t, alan, http.MethodPost, "/ui/approvals/q-1/refuse", url.Values{"csrf": {atok}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("refuse without a reason = %d; want 400", resp.StatusCode)
	}
	if resp, body := h.do(t, alan, http.MethodPost, "/ui/approvals/q-1/refuse", url.Values{"csrf": {atok}, "reason": {"no basis given"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("refuse = %d; want 303\n%s", resp.StatusCode, body)
	}
	qs, err := h.fake.Queries(t.Context(), consoletest.Users[1], false)
	if err != nil || len(qs) != 1 || qs[0].Status != "refused" {
		t.Fatalf("after refusal the queries are %+v, %v; want q-1 refused", qs, err)
	}

	// A node that cannot refuse.
	c, err := New(Config{Backend: struct{ Backend }{h.fake}, LedgerKey: h.fake.LedgerKey})
	if err != nil {
		t.Fatal(err)
	}
	h = &harness{c: c, fake: h.fake, srv: httptest.NewServer(c), log: h.log}
	t.Cleanup(h.srv.Close)
	alan = h.client(t)
	atok = h.session(t, alan, "alan")
	if _, body := h.do(t, alan, http.MethodGet, "/ui/approvals", nil); strings.Contains(body, "/refuse") {
		t.Fatalf("approvals page offers refusal on a node that cannot refuse:\n%s", body)
	}
	if resp, _ := h.do(t, alan, http.MethodPost, "/ui/approvals/q-1/refuse", url.Values{"csrf": {atok}, "reason": {"x"}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("refuse on a node that cannot = %d; want 404", resp.StatusCode)
	}
}

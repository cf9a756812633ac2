package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// browser is a cookie-keeping HTTP client of one replica's console, as a
// browser without script is.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar}}
}

// do sends the request and returns the final answer (redirects followed)
// and its body.
func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, string(out)
}

// result reloads the console's query page (where a query form's POST
// lands) until it stops reloading itself, as a browser's meta refresh
// does, and returns its last answer.
func (b *browser) result(resp *http.Response, body string) (*http.Response, string) {
	b.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for resp.StatusCode == http.StatusOK && strings.Contains(body, `<meta http-equiv="refresh"`) {
		if time.Now().After(deadline) {
			b.t.Fatalf("the console query at %s still runs:\n%s", resp.Request.URL.Path, body)
		}
		time.Sleep(50 * time.Millisecond)
		resp, body = b.do(http.MethodGet, resp.Request.URL.Path, nil)
	}
	return resp, body
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the first form on the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	resp, body := b.do(http.MethodGet, path, nil)
	m := csrfField.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s = %d, no CSRF token in\n%s", path, resp.StatusCode, body)
	}
	return m[1]
}

// TestConsoleOnReplica checks that a replica serves the web console under
// /ui/ beside its API, and that the console is a client of the node: an
// investigator signed in with her token asks a partner through the
// node's policy and ledger (a match_out entry for the partner, the hit on
// the page), and no identifier of the query reaches a log line or the
// ledger. An admin's sign-in link (POST /v1/ui/links) signs in once.
func TestConsoleOnReplica(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 1, logs)
	th.hold("phone", "GB", append([]string{"+44 7700 900101"}, fillers(30000, 10)...)...)
	gb.pin(th)
	th.pin(gb)
	q := gb.leader()
	ivanTok, err := q.users.AddUser(ctx, "user:admin", "ivan", "investigator")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("sign-in page", func(t *testing.T) {
		resp, body := newBrowser(t, q.APIURL()).do(http.MethodGet, "/ui/", nil)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/signin" || !strings.Contains(body, `name="token"`) {
			t.Errorf("GET /ui/ = %d at %s; want the sign-in form:\n%s", resp.StatusCode, resp.Request.URL.Path, body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("Content-Security-Policy = %q; want default-src 'none' and no script source", csp)
		}
		if code, _ := get(t, q.APIURL()+"/healthz"); code != http.StatusOK {
			t.Errorf("GET /healthz beside the console = %d; want 200", code)
		}
	})

	lines := []string{"07700 900101", "07700 900999"}
	values := canon(t, "phone", "GB", lines...)
	// GB holds a copy of TH's open phone set before the console asks, as a
	// running federation does: on a loaded machine the first sync, made
	// inside the query, may find TH's replica busy.
	poll(t, "GB holds TH's phone set", 3*time.Minute, func() bool {
		_, _, _, _, err := q.partnerSets.partnerSet(ctx, "TH", "phone", exchange.ReachOpen)
		return err == nil
	})
	t.Run("query", func(t *testing.T) {
		if n := len(byType(t, q, ledger.TypeMatchOut)); n != 0 {
			t.Fatalf("GB has %d match_out entries before any query; want 0", n)
		}
		b := newBrowser(t, q.APIURL())
		resp, body := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {b.csrf("/ui/signin")}, "token": {ivanTok.Token}})
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/query" {
			t.Fatalf("sign-in with ivan's token = %d at %s; want the new-query page:\n%s", resp.StatusCode, resp.Request.URL.Path, body)
		}
		form := url.Values{"csrf": {b.csrf("/ui/query")}, "kind": {"phone"}, "region": {"GB"}, "case": {"OP-UI"},
			"basis": {"Art. 10"}, "offence": {"thb"}, "purpose": {"p"}, "partners": {"TH"}, "values": {strings.Join(lines, "\n")}}
		resp, body = b.result(b.do(http.MethodPost, "/ui/query", form))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<li>07700 900101") || strings.Contains(body, "<li>07700 900999") {
			t.Fatalf("console query = %d; want TH's hit on line 07700 900101 only:\n%s", resp.StatusCode, body)
		}
		outs := byType(t, q, ledger.TypeMatchOut)
		if len(outs) != 1 || outs[0].Partner != "TH" || !strings.Contains(body, outs[0].RequestID) {
			t.Fatalf("match_out entries after the console query = %+v; want one for TH under the request ID on the page", outs)
		}
		if e := hasEntry(byRequest(t, q, outs[0].RequestID), ledger.TypeMatchResult, ledger.OutcomeOK); e == nil || e.HitCount != 1 {
			t.Errorf("match_result of the console query = %+v; want hit_count 1", e)
		}
		// The same form without its CSRF token is refused, and asks
		// no one.
		delete(form, "csrf")
		if resp, _ := b.do(http.MethodPost, "/ui/query", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("console query without the CSRF token = %d; want 403", resp.StatusCode)
		}
		if n := len(byType(t, q, ledger.TypeMatchOut)); n != 1 {
			t.Errorf("%d match_out entries after a refused form; want 1", n)
		}
	})

	t.Run("refusal", func(t *testing.T) {
		// A query that needs an approver waits; the approver refuses it
		// on the console with a reason: a denied approval entry, the
		// record refused, and the investigator cannot run it.
		aliceTok, err := q.users.AddUser(ctx, "user:admin", "alice", "approver")
		if err != nil {
			t.Fatal(err)
		}
		inv, appr := newBrowser(t, q.APIURL()), newBrowser(t, q.APIURL())
		inv.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {inv.csrf("/ui/signin")}, "token": {ivanTok.Token}})
		form := url.Values{"csrf": {inv.csrf("/ui/query")}, "kind": {"phone"}, "region": {"GB"}, "case": {"OP-UI-2"},
			"basis": {"Art. 10"}, "offence": {"forced_labour"}, "purpose": {"p"}, "partners": {"TH"}, "values": {strings.Join(lines, "\n")}}
		_, pending := inv.result(inv.do(http.MethodPost, "/ui/query", form))
		id, caseKey := regexp.MustCompile(`q-[0-9a-f]{16}`).FindString(pending), regexp.MustCompile(`[0-9a-f]{64}`).FindString(pending)
		if id == "" || caseKey == "" {
			t.Fatalf("console query that needs an approver shows no query ID or case key:\n%s", pending)
		}
		if _, err := q.querier.Refuse(ctx, ivan, id, "mine"); !errors.Is(err, httpapi.ErrForbidden) {
			t.Errorf("ivan refuses his own query: %v; want ErrForbidden", err)
		}
		appr.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {appr.csrf("/ui/signin")}, "token": {aliceTok.Token}})
		resp, body := appr.do(http.MethodPost, "/ui/approvals/"+id+"/refuse", url.Values{"csrf": {appr.csrf("/ui/approvals")}, "reason": {"no basis for forced labour"}})
		if resp.StatusCode != http.StatusOK || strings.Contains(body, id) {
			t.Errorf("alice refuses %s on the console = %d; want the approvals page without it:\n%s", id, resp.StatusCode, body)
		}
		rec, err := q.querier.QueryRecord(alice, id)
		if err != nil || rec.Status != queryRefused || rec.Approver != "alice" || rec.Reason != "no basis for forced labour" {
			t.Errorf("record of the refused query = %+v, %v; want refused by alice with her reason", rec, err)
		}
		es := byRequest(t, q, id)
		if e := hasEntry(es, ledger.TypeApproval, ledger.OutcomeDenied); e == nil {
			t.Errorf("entries of %s = %+v; want a denied approval entry", id, es)
		} else if all, _ := json.Marshal(es); strings.Contains(string(all), "no basis for forced labour") {
			t.Errorf("the reason of the refusal is on the ledger: %s", all)
		}
		if _, err := q.querier.Refuse(ctx, alice, id, "again"); !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("refusing a refused query: %v; want ErrConflict", err)
		}
		if _, err := q.querier.Approve(ctx, alice, id); !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("approving a refused query: %v; want ErrConflict", err)
		}
		before := len(byType(t, q, ledger.TypeMatchOut))
		run := httpapi.QueryRequest{ID: id, CaseKey: caseKey, Kind: "phone", Case: "OP-UI-2",
			Basis: "Art. 10", Offence: "forced_labour", Purpose: "p", Partners: []string{"TH"}, Values: values}
		if _, err := q.querier.Query(ctx, ivan, run); !errors.Is(err, httpapi.ErrForbidden) || !strings.Contains(err.Error(), "refused by alice") {
			t.Errorf("running the refused query: %v; want ErrForbidden, refused by alice", err)
		}
		if n := len(byType(t, q, ledger.TypeMatchOut)); n != before {
			t.Errorf("%d match_out entries after running a refused query; want %d", n, before)
		}
	})

	t.Run("progress", func(t *testing.T) {
		// The querier tells the console's progress which partners it
		// asks, before it asks them, and each partner's part as it
		// completes: the same parts the result holds.
		var mu sync.Mutex
		var asked []string
		var id string
		got := map[string]httpapi.PartnerResult{}
		req := httpapi.QueryRequest{Kind: "phone", Case: "OP-UI-3", Basis: "Art. 10", Offence: "thb", Purpose: "p",
			Partners: []string{"TH"}, Values: values}
		res, err := (&backend{querier: q.querier}).QueryProgress(ctx, ivan, req,
			func(qid string, ps []string) {
				mu.Lock()
				defer mu.Unlock()
				if len(got) > 0 {
					t.Error("asking told after a partner answered")
				}
				id, asked = qid, ps
			},
			func(r httpapi.PartnerResult) {
				mu.Lock()
				defer mu.Unlock()
				got[r.Agency] = r
			})
		if err != nil {
			t.Fatal(err)
		}
		if id != res.ID || !slices.Equal(asked, []string{"TH"}) || len(got) != 1 || got["TH"].RequestID != res.Partners[0].RequestID ||
			got["TH"].HitCount != 1 {
			t.Errorf("progress: asking %q %v, answered %+v; want query %s asking TH, TH's part %+v", id, asked, got, res.ID, res.Partners)
		}
	})

	t.Run("operators", func(t *testing.T) {
		// GB's admin sees the copy of TH's phone set its query used;
		// TH's admin sees GB's phone budget used by what TH's ledger
		// admitted today.
		gbAdmin := signedIn(t, gb)
		_, body := gbAdmin.do(http.MethodGet, "/ui/status", nil)
		row := regexp.MustCompile(`<tr><th scope="row">TH</th><td>phone</td><td>open</td><td>\d+</td><td>(\d+)</td><td>(\d+)</td><td>([^<]+)</td>`).FindStringSubmatch(body)
		if row == nil || row[1] == "0" || row[2] == "0" || strings.HasPrefix(row[3], "not since") {
			t.Errorf("GB's status page: no synced copy of TH's phone set (%q):\n%s", row, body)
		}
		var used uint64
		ins, err := th.leader().Audit().Entries(ctx, ledger.Filter{Types: []ledger.Type{ledger.TypeMatchIn}})
		if err != nil {
			t.Fatal(err)
		}
		day := time.Now().UTC().Truncate(24 * time.Hour)
		for _, e := range ins {
			if e.Partner == "GB" && e.Kind == "phone" && e.Outcome == ledger.OutcomeOK && !e.Time.Before(day) {
				used += e.PaddedSize
			}
		}
		thAdmin := signedIn(t, th)
		resp, body := thAdmin.do(http.MethodGet, "/ui/policy", nil)
		want := fmt.Sprintf(`<th scope="row">GB phone daily</th><td>%d</td><td>1000000</td>`, used)
		if resp.StatusCode != http.StatusOK || used == 0 || !strings.Contains(body, want) {
			t.Errorf("TH's policy page = %d; want GB's phone budget with %d used (%s):\n%s", resp.StatusCode, used, want, body)
		}
		if !strings.Contains(body, `id="policy-history"`) || !strings.Contains(body, th.leader().Policy().Version()) {
			t.Errorf("TH's policy page has no history with the version in force:\n%s", body)
		}
	})

	t.Run("no identifier leaks", func(t *testing.T) {
		s := secrets("phone", values)
		mustNotContain(t, "the logs", logs.Bytes(), s)
		mustNotContain(t, "the logs", logs.Bytes(), map[string][][]byte{"ivan's token": {[]byte(ivanTok.Token)}})
		for _, a := range []*agency{gb, th} {
			es, err := a.leader().Audit().Entries(ctx, ledger.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			all, _ := json.Marshal(es)
			mustNotContain(t, a.cc+"'s ledger", all, s)
		}
	})

	t.Run("link", func(t *testing.T) {
		tok, err := ReadToken(filepath.Join(gb.dirs[0], AdminTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		var he *httpapi.Error
		if _, err := (&httpapi.Client{BaseURL: q.APIURL(), Token: ivanTok.Token}).ConsoleLink(ctx, "ivan"); !errors.As(err, &he) || he.Status != http.StatusForbidden {
			t.Errorf("an investigator's ConsoleLink = %v; want 403", err)
		}
		admin := &httpapi.Client{BaseURL: q.APIURL(), Token: tok}
		if _, err := admin.ConsoleLink(ctx, "nobody"); !errors.As(err, &he) || he.Status != http.StatusNotFound {
			t.Errorf("ConsoleLink(nobody) = %v; want 404", err)
		}
		l, err := admin.ConsoleLink(ctx, "ivan")
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(l.Path)
		if err != nil || !strings.HasPrefix(l.Path, "/ui/link?s=") {
			t.Fatalf("link path %q; want /ui/link?s=SECRET", l.Path)
		}
		use := func(b *browser) *http.Response {
			resp, _ := b.do(http.MethodPost, "/ui/link", url.Values{"csrf": {b.csrf(l.Path)}, "s": {u.Query().Get("s")}})
			return resp
		}
		if resp := use(newBrowser(t, q.APIURL())); resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/query" {
			t.Errorf("first use of ivan's link = %d at %s; want the new-query page", resp.StatusCode, resp.Request.URL.Path)
		}
		if resp := use(newBrowser(t, q.APIURL())); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("second use of ivan's link = %d; want 401", resp.StatusCode)
		}
		mustNotContain(t, "the logs", logs.Bytes(), map[string][][]byte{"link secret": {[]byte(u.Query().Get("s"))}})
	})
}

// signedIn returns a browser signed in to a's leader's console as a's
// admin.
func signedIn(t *testing.T, a *agency) *browser {
	t.Helper()
	tok, err := ReadToken(filepath.Join(a.dirs[0], AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, a.leader().APIURL())
	if resp, body := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {b.csrf("/ui/signin")}, "token": {tok}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("%s admin signs in = %d:\n%s", a.cc, resp.StatusCode, body)
	}
	return b
}

// TestConsoleOverTLS checks that a replica whose API is off loopback
// serves the console over its TLS listener, and that the session cookie
// it sets there is Secure, HttpOnly and SameSite=Strict.
func TestConsoleOverTLS(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	res, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB", Listen: ListenConfig{API: "0.0.0.0:0"}})
	if err != nil {
		t.Fatal(err)
	}
	n := openNode(t, dir)
	if !strings.HasPrefix(n.APIURL(), "https://") {
		t.Fatalf("APIURL = %s; want https", n.APIURL())
	}
	tok, err := ReadToken(res.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := httpapi.AgencyHTTPClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	b := newBrowser(t, n.APIURL())
	b.hc.Transport = hc.Transport
	b.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	csrf := b.csrf("/ui/signin")
	resp, body := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {csrf}, "token": {tok}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in over TLS = %d; want 303:\n%s", resp.StatusCode, body)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "xborder_session" {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/ui/" {
		t.Errorf("session cookie over TLS = %+v; want Secure, HttpOnly, SameSite=Strict, Path=/ui/", session)
	}
}

package console

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/console/consoletest"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// held is what the fake partner holds (canonical phone numbers).
var held = []string{"+66812345678", "+447700900123"}

type harness struct {
	c    *Console
	fake *consoletest.Fake
	srv  *httptest.Server
	log  *syncBuffer
}

func newHarness(t *testing.T, approval, tlsOn bool) *harness {
	t.Helper()
	fake, err := consoletest.NewFake(time.Now(), 40, held, approval)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{fake: fake, log: &syncBuffer{}}
	h.c, err = New(Config{Backend: fake, LedgerKey: fake.LedgerKey, Agency: consoletest.Agency,
		Logger: slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if tlsOn {
		h.srv = httptest.NewTLSServer(h.c)
	} else {
		h.srv = httptest.NewServer(h.c)
	}
	t.Cleanup(h.srv.Close)
	return h
}

// client returns a browser-like client: a cookie jar, no redirects
// followed (so tests see them).
func (h *harness) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := h.srv.Client()
	return &http.Client{Jar: jar, Transport: cl.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the CSRF token in the first form of the page at path.
func (h *harness) csrfOf(t *testing.T, cl *http.Client, path string) string {
	t.Helper()
	resp, body := h.do(t, cl, http.MethodGet, path, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d; want 200\n%s", path, resp.StatusCode, body)
	}
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("GET %s: no CSRF token in the page", path)
	}
	return m[1]
}

func (h *harness) do(t *testing.T, cl *http.Client, method, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// session signs in and returns the CSRF token from the role's home page.
func (h *harness) session(t *testing.T, cl *http.Client, name string) string {
	t.Helper()
	tok := h.csrfOf(t, cl, "/ui/signin")
	resp, body := h.do(t, cl, http.MethodPost, "/ui/signin", url.Values{"csrf": {tok}, "token": {consoletest.Token(name)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s = %d; want 303\n%s", name, resp.StatusCode, body)
	}
	resp, _ = h.do(t, cl, http.MethodGet, "/ui/", nil)
	home := resp.Header.Get("Location")
	if home == "" {
		t.Fatalf("GET /ui/ as %s: no redirect to a home page (%d)", name, resp.StatusCode)
	}
	return h.csrfOf(t, cl, home)
}

func queryValues(csrf string, values ...string) url.Values {
	return url.Values{"csrf": {csrf}, "kind": {"phone"}, "case": {"OP-7"}, "basis": {"MSA 2015 s.1"},
		"offence": {"thb"}, "values": {strings.Join(values, "\n")}}
}

func TestCSRFRequired(t *testing.T) {
	h := newHarness(t, false, false)
	ivy := h.client(t)
	tok := h.session(t, ivy, "ivy")
	ada := h.client(t)
	adaTok := h.session(t, ada, "ada")
	tests := []struct {
		name string
		csrf string
		want int
	}{
		{"no token", "", http.StatusForbidden},
		{"a made-up token", "AAAA", http.StatusForbidden},
		{"another user's session's token", adaTok, http.StatusForbidden},
		{"the session's token", tok, http.StatusSeeOther}, // to the query's page
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := queryValues(tt.csrf, "+66 81 234 5678")
			if tt.csrf == "" {
				f.Del("csrf")
			}
			resp, body := h.do(t, ivy, http.MethodPost, "/ui/query", f)
			if resp.StatusCode != tt.want {
				t.Fatalf("POST /ui/query with %s = %d; want %d\n%s", tt.name, resp.StatusCode, tt.want, body)
			}
		})
	}
	// The sign-in and sign-out forms need theirs too.
	resp, _ := h.do(t, h.client(t), http.MethodPost, "/ui/signin", url.Values{"token": {consoletest.Token("ivy")}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /ui/signin without a CSRF token = %d; want 403", resp.StatusCode)
	}
	resp, _ = h.do(t, ivy, http.MethodPost, "/ui/signout", url.Values{})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /ui/signout without a CSRF token = %d; want 403", resp.StatusCode)
	}
	// A form from another origin is refused even with the token.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/ui/query", strings.NewReader(queryValues(tok, "+66 81 234 5678").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := ivy.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /ui/query from another origin = %d; want 403", resp.StatusCode)
	}
}

func TestSessionRefused(t *testing.T) {
	h := newHarness(t, false, false)
	ada := h.client(t)
	tok := h.session(t, ada, "ada")
	u, _ := url.Parse(h.srv.URL + "/ui/")
	var sid string
	for _, ck := range ada.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			sid = ck.Value
		}
	}
	if sid == "" {
		t.Fatal("no session cookie after sign-in")
	}

	// Another user's session ID in the investigator's browser is that
	// user's session, with that user's role: it cannot reach the
	// investigator's pages, and no made-up ID is a session.
	for _, tt := range []struct {
		name, cookie, path string
		want               int
	}{
		{"auditor's session on an investigator page", sid, "/ui/query", http.StatusForbidden},
		{"made-up session ID", "bm90LWEtc2Vzc2lvbg", "/ui/ledger", http.StatusSeeOther},
		{"no session", "", "/ui/ledger", http.StatusSeeOther},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cl := h.client(t)
			if tt.cookie != "" {
				cl.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: tt.cookie, Path: "/ui/"}})
			}
			resp, _ := h.do(t, cl, http.MethodGet, tt.path, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s with %s = %d; want %d", tt.path, tt.name, resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusSeeOther && resp.Header.Get("Location") != "/ui/signin" {
				t.Fatalf("GET %s with %s redirects to %q; want /ui/signin", tt.path, tt.name, resp.Header.Get("Location"))
			}
		})
	}

	// After sign-out the session is gone.
	resp, _ := h.do(t, ada, http.MethodPost, "/ui/signout", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out = %d; want 303", resp.StatusCode)
	}
	cl := h.client(t)
	cl.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: sid, Path: "/ui/"}})
	if resp, _ := h.do(t, cl, http.MethodGet, "/ui/ledger", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /ui/ledger with a signed-out session = %d; want 303 to sign-in", resp.StatusCode)
	}

	// A removed user's session ends.
	ivy := h.client(t)
	h.session(t, ivy, "ivy")
	h.fake.RemoveUser("ivy")
	if resp, _ := h.do(t, ivy, http.MethodGet, "/ui/query", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /ui/query after the user was removed = %d; want 303 to sign-in", resp.StatusCode)
	}
}

func TestPagesByRole(t *testing.T) {
	h := newHarness(t, false, false)
	paths := []string{"/ui/query", "/ui/queries", "/ui/approvals", "/ui/ledger", "/ui/ledger/3", "/ui/checkpoints", "/ui/status", "/ui/policy", "/ui/inbox", "/ui/followups", "/ui/audit/followups"}
	sees := map[string][]string{
		"ivy":  {"/ui/query", "/ui/queries", "/ui/followups"},
		"alan": {"/ui/approvals"},
		"ada":  {"/ui/ledger", "/ui/ledger/3", "/ui/checkpoints", "/ui/audit/followups"},
		"root": {"/ui/status", "/ui/policy"},
		"sam":  {"/ui/status", "/ui/policy"},
		"lia":  {"/ui/inbox"},
	}
	for _, u := range consoletest.Users {
		cl := h.client(t)
		h.session(t, cl, u.Name)
		for _, p := range paths {
			want := http.StatusForbidden
			for _, s := range sees[u.Name] {
				if s == p {
					want = http.StatusOK
				}
			}
			resp, body := h.do(t, cl, http.MethodGet, p, nil)
			if resp.StatusCode != want {
				t.Errorf("GET %s as %s (%s) = %d; want %d\n%.300s", p, u.Name, u.Role, resp.StatusCode, want, body)
			}
		}
	}
	// A form to a page the role may not see is refused too, token or not.
	alan := h.client(t)
	tok := h.session(t, alan, "alan")
	if resp, _ := h.do(t, alan, http.MethodPost, "/ui/query", queryValues(tok, "+66 81 234 5678")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /ui/query as the approver = %d; want 403", resp.StatusCode)
	}
}

func TestCookieFlags(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			h := newHarness(t, false, tlsOn)
			cl := h.client(t)
			tok := h.csrfOf(t, cl, "/ui/signin")
			resp, _ := h.do(t, cl, http.MethodPost, "/ui/signin", url.Values{"csrf": {tok}, "token": {consoletest.Token("ada")}})
			var got *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == sessionCookie {
					got = ck
				}
			}
			if got == nil {
				t.Fatalf("sign-in set no %s cookie", sessionCookie)
			}
			if !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != Prefix || got.Secure != tlsOn {
				t.Errorf("session cookie: HttpOnly=%v SameSite=%v Path=%q Secure=%v; want true, Strict, %q, %v",
					got.HttpOnly, got.SameSite, got.Path, got.Secure, Prefix, tlsOn)
			}
			if got.MaxAge <= 0 || got.MaxAge > int(DefaultSessionTTL.Seconds()) || got.Expires.IsZero() {
				t.Errorf("session cookie: Max-Age=%d Expires=%v; want 1..%d and a date", got.MaxAge, got.Expires, int(DefaultSessionTTL.Seconds()))
			}
		})
	}
}

func TestSessionExpires(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := newSessions(time.Hour, clock)
	id, _ := s.create("ada", "auditor")
	if _, ok := s.get(id); !ok {
		t.Fatal("a new session is not live")
	}
	now = now.Add(time.Hour)
	if _, ok := s.get(id); ok {
		t.Fatal("a session is live at its expiry")
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t, false, false)
	cl := h.client(t)
	h.session(t, cl, "ada")
	for _, p := range []string{"/ui/signin", "/ui/ledger", "/ui/ledger/2", "/ui/nowhere", "/ui/static/style.css", "/ui/query"} {
		resp, _ := h.do(t, cl, http.MethodGet, p, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
			t.Errorf("GET %s: Content-Security-Policy %q allows script or inline code", p, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: nosniff %q, Cache-Control %q", p, resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("Cache-Control"))
		}
	}
}

func TestSignInLink(t *testing.T) {
	h := newHarness(t, false, false)
	path, err := h.c.Link(t.Context(), "ada", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(path, "/ui/link?s=")
	for k, v := range h.c.links.m {
		if k == secret || strings.Contains(fmt.Sprint(v), secret) {
			t.Fatal("the link store holds the link's secret")
		}
	}
	use := func(cl *http.Client) int {
		tok := h.csrfOf(t, cl, path)
		resp, _ := h.do(t, cl, http.MethodPost, "/ui/link", url.Values{"csrf": {tok}, "s": {secret}})
		return resp.StatusCode
	}
	if got := use(h.client(t)); got != http.StatusSeeOther {
		t.Fatalf("first use of a sign-in link = %d; want 303", got)
	}
	if got := use(h.client(t)); got != http.StatusUnauthorized {
		t.Fatalf("second use of a sign-in link = %d; want 401", got)
	}
	if _, err := h.c.Link(t.Context(), "nobody", 0); err == nil {
		t.Fatal("a link for a user that does not exist was made")
	}
	// An expired link signs no one in.
	now := time.Now()
	l := newLinks(func() time.Time { return now })
	s, err := l.add("ada", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, ok := l.use(s); ok {
		t.Fatal("an expired link signed in")
	}
}

func TestSignInFailuresLimited(t *testing.T) {
	h := newHarness(t, false, false)
	cl := h.client(t)
	var last int
	for range DefaultMaxFailures + 1 {
		tok := h.csrfOf(t, cl, "/ui/signin")
		resp, _ := h.do(t, cl, http.MethodPost, "/ui/signin", url.Values{"csrf": {tok}, "token": {"xbt_wrong"}})
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("sign-in after %d failures = %d; want 429", DefaultMaxFailures, last)
	}
	if strings.Contains(h.log.String(), "xbt_wrong") {
		t.Fatal("a token tried appears in the log")
	}
}

// TestMount: the one handler node serves routes /ui/ to the console and
// everything else to the API.
func TestMount(t *testing.T) {
	h := newHarness(t, false, false)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api "+r.URL.Path) })
	srv := httptest.NewServer(Mount(api, h.c))
	defer srv.Close()
	for path, want := range map[string]string{"/v1/status": "api /v1/status", "/healthz": "api /healthz", "/ui/signin": "<title>Sign in"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("GET %s through Mount = %.80q; want %q in it", path, b, want)
		}
	}
}

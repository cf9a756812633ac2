package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// stubBackend is a Backend for handler tests: one token, one user, and
// errors chosen by the test.
type stubBackend struct {
	Backend // unused methods panic
	ready   error
	forbid  bool
	entries []ledger.Entry
	lastF   ledger.Filter
}

func (s *stubBackend) Authenticate(tok string) (User, error) {
	if tok != "good" {
		return User{}, fmt.Errorf("authenticate: %w", ErrUnauthorized)
	}
	return User{Name: "ann", Role: "auditor"}, nil
}

func (s *stubBackend) Authorize(u User, action string) error {
	if s.forbid {
		return fmt.Errorf("role %s may not %s: %w", u.Role, action, ErrForbidden)
	}
	return nil
}

func (s *stubBackend) Ready() error { return s.ready }

func (s *stubBackend) Entries(ctx context.Context, u User, purpose string, f ledger.Filter) ([]ledger.Entry, error) {
	s.lastF = f
	return s.entries, nil
}

func (s *stubBackend) ApplyPolicy(ctx context.Context, u User, f policy.Files) (string, error) {
	_, err := policy.Parse(f)
	return "v1", err
}

func serve(t *testing.T, s *Server, method, path, token string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestStatusOf(t *testing.T) {
	_, ferr := policy.Parse(policy.Files{PolicyName: "p.cedar", Policy: []byte("permit ("), LimitsName: "l.yaml"})
	tests := []struct {
		err  error
		want int
		code string
	}{
		{fmt.Errorf("x: %w", ErrBadRequest), 400, "bad_request"},
		{fmt.Errorf("x: %w", ErrUnauthorized), 401, "unauthorized"},
		{fmt.Errorf("x: %w", ErrForbidden), 403, "forbidden"},
		{fmt.Errorf("x: %w", ErrNotFound), 404, "not_found"},
		{fmt.Errorf("x: %w", ledger.ErrNotFound), 404, "not_found"},
		{fmt.Errorf("x: %w", ErrConflict), 409, "conflict"},
		{fmt.Errorf("x: %w", ErrTooMany), 429, "too_many"},
		{fmt.Errorf("x: %w", ErrUnavailable), 503, "unavailable"},
		{fmt.Errorf("append: %w", ledger.ErrNoQuorum), 503, "unavailable"},
		{fmt.Errorf("append: %w", ledger.ErrHalted), 503, "unavailable"},
		{fmt.Errorf("x: %w", ledger.ErrInvalid), 400, "bad_request"},
		{fmt.Errorf("x: %w", ledger.ErrRetention), 400, "bad_request"},
		{fmt.Errorf("apply: %w", ferr), 400, "bad_request"},
		{errors.New("disk on fire"), 500, "internal"},
	}
	for _, tt := range tests {
		if got, code := StatusOf(tt.err); got != tt.want || code != tt.code {
			t.Errorf("StatusOf(%v) = %d, %s; want %d, %s", tt.err, got, code, tt.want, tt.code)
		}
	}
}

func TestReadyz(t *testing.T) {
	b := &stubBackend{ready: fmt.Errorf("audit group has no quorum: %w", ErrUnavailable)}
	s := New(Config{Backend: b})
	code, body := serve(t, s, "GET", "/readyz", "")
	if code != 503 || !strings.Contains(body, "audit group has no quorum") || !strings.Contains(body, `"code": "unavailable"`) {
		t.Errorf("GET /readyz = %d %s; want 503 with the reason", code, body)
	}
	b.ready = nil
	if code, _ := serve(t, s, "GET", "/readyz", ""); code != 200 {
		t.Errorf("GET /readyz when ready = %d; want 200", code)
	}
	if code, _ := serve(t, s, "GET", "/healthz", ""); code != 200 {
		t.Errorf("GET /healthz = %d; want 200", code)
	}
}

func TestAuthAndObserve(t *testing.T) {
	b := &stubBackend{}
	type obs struct {
		route  string
		status int
	}
	var seen []obs
	s := New(Config{Backend: b, Observe: func(route string, status int, _ time.Duration) { seen = append(seen, obs{route, status}) }})
	tests := []struct {
		token  string
		forbid bool
		want   int
	}{
		{"", false, 401},
		{"bad", false, 401},
		{"good", true, 403},
		{"good", false, 200},
	}
	for _, tt := range tests {
		b.forbid = tt.forbid
		if code, body := serve(t, s, "GET", "/v1/ledger/entries", tt.token); code != tt.want {
			t.Errorf("token %q forbid %v: %d %s; want %d", tt.token, tt.forbid, code, body, tt.want)
		}
	}
	if len(seen) != len(tests) || seen[0] != (obs{"GET /v1/ledger/entries", 401}) || seen[3].status != 200 {
		t.Errorf("observed %v; want one observation per request with its route and status", seen)
	}
}

func TestFailedLoginsLimited(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Config{Backend: &stubBackend{}, MaxFailures: 3, Now: func() time.Time { return now }})
	for i := range 3 {
		if code, _ := serve(t, s, "GET", "/v1/status", "bad"); code != 401 {
			t.Fatalf("failure %d: %d; want 401", i, code)
		}
	}
	// The same wrong token again waits.
	r := httptest.NewRequest("GET", "/v1/ledger/entries", nil)
	r.Header.Set("Authorization", "Bearer bad")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 429 || w.Header().Get("Retry-After") != "61" {
		t.Errorf("after 3 failures: %d, Retry-After %q; want 429, 61", w.Code, w.Header().Get("Retry-After"))
	}
	// Other wrong tokens from the same address wait too.
	if code, _ := serve(t, s, "GET", "/v1/status", "worse"); code != 429 {
		t.Errorf("another wrong token after 3 failures: %d; want 429", code)
	}
	now = now.Add(61 * time.Second)
	if code, _ := serve(t, s, "GET", "/v1/status", "bad"); code != 401 {
		t.Errorf("a minute later: %d; want 401", code)
	}
}

// TestFailedLoginsNeverBlockValidToken: wrong tokens from any local process
// do not lock a user out.
func TestFailedLoginsNeverBlockValidToken(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Config{Backend: &stubBackend{}, MaxFailures: 3, Now: func() time.Time { return now }})
	for i := range 10 {
		serve(t, s, "GET", "/v1/status", fmt.Sprintf("bad-%d", i))
		serve(t, s, "GET", "/v1/status", "bad")
	}
	if code, body := serve(t, s, "GET", "/v1/ledger/entries", "good"); code != 200 {
		t.Errorf("the right token after 20 failures from its address: %d %s; want 200", code, body)
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		query string
		want  ledger.Filter
		ok    bool
	}{
		{"", ledger.Filter{}, true},
		{"type=policy&type=user&partner=FR&after=3&limit=10", ledger.Filter{
			Types: []ledger.Type{ledger.TypePolicy, ledger.TypeUser}, Partner: "FR", After: 3, Limit: 10}, true},
		{"from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&case=C1&actor=user:ann", ledger.Filter{
			From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
			Case: "C1", Actor: "user:ann"}, true},
		{"type=nonsense", ledger.Filter{}, false},
		{"from=yesterday", ledger.Filter{}, false},
		{"after=-1", ledger.Filter{}, false},
		{"limit=x", ledger.Filter{}, false},
	}
	for _, tt := range tests {
		b := &stubBackend{}
		s := New(Config{Backend: b})
		code, body := serve(t, s, "GET", "/v1/ledger/entries?"+tt.query, "good")
		if (code == 200) != tt.ok {
			t.Errorf("query %q: %d %s; want ok %v", tt.query, code, body, tt.ok)
			continue
		}
		if tt.ok && fmt.Sprint(b.lastF) != fmt.Sprint(tt.want) {
			t.Errorf("query %q: filter %+v; want %+v", tt.query, b.lastF, tt.want)
		}
		if !tt.ok && code != 400 {
			t.Errorf("query %q: %d; want 400", tt.query, code)
		}
	}
}

func TestPolicyFileErrorIs400(t *testing.T) {
	s := New(Config{Backend: &stubBackend{}})
	r := httptest.NewRequest("POST", "/v1/policy", strings.NewReader(
		`{"policy_name":"p.cedar","policy":"permit (","limits_name":"l.yaml","limits":""}`))
	r.Header.Set("Authorization", "Bearer good")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "l.yaml:1: ") {
		t.Errorf("POST /v1/policy with a bad file: %d %s; want 400 naming l.yaml:1", w.Code, w.Body.String())
	}
	// Unknown fields are refused.
	r = httptest.NewRequest("POST", "/v1/policy", strings.NewReader(`{"polcy":"x"}`))
	r.Header.Set("Authorization", "Bearer good")
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest {
		t.Errorf("POST /v1/policy with an unknown field: %d; want 400", w.Code)
	}
}

func FuzzRequests(f *testing.F) {
	f.Add("type=policy&after=1&limit=2&from=2026-01-01T00:00:00Z", `{"policy_name":"p","policy":"","limits_name":"l","limits":""}`)
	f.Add("type=%ff&limit=-1", `{"before":"x"}`)
	f.Add("", `{"card":"{}","fingerprint":"AAAA"}`)
	f.Fuzz(func(t *testing.T, query, body string) {
		s := New(Config{Backend: &stubBackend{}})
		r := httptest.NewRequest("GET", "/v1/ledger/entries", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", "Bearer good")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if code := w.Code; code != 200 && code != 400 {
			t.Errorf("GET entries?%q = %d; want 200 or 400", query, w.Code)
		}
		r = httptest.NewRequest("POST", "/v1/policy", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer good")
		w = httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != 200 && w.Code != 400 {
			t.Errorf("POST policy %q = %d; want 200 or 400", body, w.Code)
		}
	})
}

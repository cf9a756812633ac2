package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// ConsoleLink makes stubBackend a LinkBackend: a link for "ivan" only.
func (s *stubBackend) ConsoleLink(ctx context.Context, actor User, user string) (Link, error) {
	if user != "ivan" {
		return Link{}, fmt.Errorf("no user %q: %w", user, ErrNotFound)
	}
	return Link{User: user, Path: "/ui/link?s=secret", Expires: time.Unix(1e9, 0).UTC()}, nil
}

// TestConsoleLinkRoute checks POST /v1/ui/links: the link for a user that
// exists, 404 for one that does not, 400 without a user, 403 when the
// policy does not let the caller manage users, and the client's decoding.
func TestConsoleLinkRoute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		forbid bool
		body   string
		status int
		want   string
	}{
		{"made", false, `{"user":"ivan"}`, http.StatusOK, `"path": "/ui/link?s=secret"`},
		{"unknown user", false, `{"user":"mallory"}`, http.StatusNotFound, `"code": "not_found"`},
		{"no user", false, `{}`, http.StatusBadRequest, `name the user`},
		{"forbidden", true, `{"user":"ivan"}`, http.StatusForbidden, `"code": "forbidden"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Backend: &stubBackend{forbid: tc.forbid}})
			r := httptest.NewRequest(http.MethodPost, "/v1/ui/links", strings.NewReader(tc.body))
			r.Header.Set("Authorization", "Bearer good")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("POST /v1/ui/links %s = %d %s; want %d with %s", tc.body, w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
	t.Run("client", func(t *testing.T) {
		srv := httptest.NewServer(New(Config{Backend: &stubBackend{}}))
		defer srv.Close()
		l, err := (&Client{BaseURL: srv.URL, Token: "good"}).ConsoleLink(context.Background(), "ivan")
		if err != nil || l.User != "ivan" || l.Path != "/ui/link?s=secret" || !l.Expires.Equal(time.Unix(1e9, 0)) {
			t.Errorf("ConsoleLink(ivan) = %+v, %v; want ivan's link", l, err)
		}
	})
}

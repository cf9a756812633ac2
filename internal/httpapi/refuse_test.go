package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Refuse makes stubBackend a RefuseBackend: q-1 is pending.
func (s *stubBackend) Refuse(ctx context.Context, u User, id, reason string) (QueryRecord, error) {
	if id != "q-1" {
		return QueryRecord{}, fmt.Errorf("query %s: no such query: %w", id, ErrNotFound)
	}
	return QueryRecord{ID: id, Status: "refused", Approver: u.Name, Reason: reason}, nil
}

// TestRefuseRoute checks POST /v1/queries/{id}/refuse: the reason reaches
// the backend trimmed; none, or one too long, is a 400 before the backend
// is asked; an unknown query is a 404.
func TestRefuseRoute(t *testing.T) {
	long := strings.Repeat("x", MaxRefusalReason+1)
	for _, tc := range []struct {
		name, id, body string
		status         int
		want           string
	}{
		{"refused", "q-1", `{"reason":"  no basis given  "}`, http.StatusOK, `"reason": "no basis given"`},
		{"no reason", "q-1", `{"reason":" "}`, http.StatusBadRequest, "give a reason"},
		{"reason too long", "q-1", `{"reason":"` + long + `"}`, http.StatusBadRequest, "give a reason"},
		{"unknown query", "q-2", `{"reason":"r"}`, http.StatusNotFound, "no such query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Backend: &stubBackend{}})
			r := httptest.NewRequest(http.MethodPost, "/v1/queries/"+tc.id+"/refuse", strings.NewReader(tc.body))
			r.Header.Set("Authorization", "Bearer good")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("POST refuse %s = %d %s; want %d with %s", tc.name, w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
	t.Run("client", func(t *testing.T) {
		srv := httptest.NewServer(New(Config{Backend: &stubBackend{}}))
		defer srv.Close()
		rec, err := (&Client{BaseURL: srv.URL, Token: "good"}).Refuse(context.Background(), "q-1", "no basis")
		if err != nil || rec.Status != "refused" || rec.Reason != "no basis" || rec.Approver != "ann" {
			t.Errorf("Refuse(q-1) = %+v, %v; want refused by ann for no basis", rec, err)
		}
	})
}

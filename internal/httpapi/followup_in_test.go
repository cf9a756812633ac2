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

// FollowupInbox and AnswerFollowup make stubBackend a
// FollowupInboxBackend: follow-up f-1 is open.
func (s *stubBackend) FollowupInbox(ctx context.Context, u User) ([]FollowupInboxItem, error) {
	return []FollowupInboxItem{{ID: "f-1", Partner: "GB", Kind: "phone", State: "open", Deadline: time.Unix(0, 0).UTC()}}, nil
}

func (s *stubBackend) AnswerFollowup(ctx context.Context, u User, id string, a AnswerFollowup) (FollowupInboxItem, error) {
	if id != "f-1" {
		return FollowupInboxItem{}, fmt.Errorf("no follow-up %s: %w", id, ErrNotFound)
	}
	out := FollowupInboxItem{ID: id, State: "shared", Actor: "user:" + u.Name, Answer: &FollowupAnswer{Outcome: "shared", Handling: a.Handling}}
	if a.Refuse {
		out.State, out.Answer = "refused", &FollowupAnswer{Outcome: "refused", Reason: a.Reason}
	}
	return out, nil
}

// TestFollowupInboxRoutes checks the liaison's routes: a decision that
// shares needs a handling code and something to share, a refusal a reason
// and nothing shared, all refused with 400 before the backend is asked;
// an unknown follow-up is a 404; the client round-trips.
func TestFollowupInboxRoutes(t *testing.T) {
	for _, tc := range []struct {
		name, id, body string
		status         int
		want           string
	}{
		{"share", "f-1", `{"share":["reference","contact"],"handling":"H2","message":"m"}`, http.StatusOK, `"handling": "H2"`},
		{"refuse", "f-1", `{"refuse":true,"reason":"closed case"}`, http.StatusOK, `"reason": "closed case"`},
		{"no handling", "f-1", `{"share":["reference"]}`, http.StatusBadRequest, "give H0 to H3"},
		{"nothing shared", "f-1", `{"handling":"H1"}`, http.StatusBadRequest, "say what to share"},
		{"share an identifier", "f-1", `{"share":["value"],"handling":"H1"}`, http.StatusBadRequest, "give reference, contact or both"},
		{"refuse without reason", "f-1", `{"refuse":true}`, http.StatusBadRequest, "needs a reason"},
		{"refuse and share", "f-1", `{"refuse":true,"reason":"r","share":["contact"]}`, http.StatusBadRequest, "shares nothing"},
		{"reason without refuse", "f-1", `{"share":["contact"],"handling":"H1","reason":"r"}`, http.StatusBadRequest, "for a refusal"},
		{"unknown field", "f-1", `{"refuse":true,"reason":"r","tag":"x"}`, http.StatusBadRequest, "unknown field"},
		{"unknown follow-up", "f-2", `{"refuse":true,"reason":"r"}`, http.StatusNotFound, "no follow-up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Backend: &stubBackend{}})
			r := httptest.NewRequest(http.MethodPost, "/v1/followups/inbox/"+tc.id+"/answer", strings.NewReader(tc.body))
			r.Header.Set("Authorization", "Bearer good")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("POST answer %s = %d %s; want %d with %s", tc.name, w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
	t.Run("client", func(t *testing.T) {
		srv := httptest.NewServer(New(Config{Backend: &stubBackend{}}))
		defer srv.Close()
		cl := &Client{BaseURL: srv.URL, Token: "good"}
		items, err := cl.FollowupInbox(context.Background())
		if err != nil || len(items) != 1 || items[0].ID != "f-1" || items[0].Partner != "GB" {
			t.Errorf("FollowupInbox = %+v, %v; want f-1 of GB", items, err)
		}
		it, err := cl.AnswerFollowup(context.Background(), "f-1", AnswerFollowup{Refuse: true, Reason: "closed"})
		if err != nil || it.State != "refused" || it.Actor != "user:ann" {
			t.Errorf("AnswerFollowup = %+v, %v; want refused by user:ann", it, err)
		}
	})
}

package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
)

// The querier's follow-up routes make stubBackend a FollowupOutBackend:
// q-1 had hits 1 and 2 at TH; follow-up f-1 is ann's.
func (s *stubBackend) Followup(ctx context.Context, u User, id string, req FollowupRequest) (SentFollowup, error) {
	if id != "q-1" {
		return SentFollowup{}, fmt.Errorf("follow-up of %s: no hits kept: %w", id, ErrNotFound)
	}
	for _, h := range req.Hits {
		if h < 1 || h > 2 {
			return SentFollowup{}, fmt.Errorf("follow-up of %s: %d is not a hit of TH: %w", id, h, ErrBadRequest)
		}
	}
	return SentFollowup{ID: "f-1", Query: id, Partner: req.Partner, User: u.Name, Hits: req.Hits, Status: FollowupOpen}, nil
}

func (s *stubBackend) Followups(ctx context.Context, u User) ([]SentFollowup, error) {
	return []SentFollowup{{ID: "f-1", User: "ann", Status: FollowupOpen}}, nil
}

func (s *stubBackend) SentFollowup(ctx context.Context, u User, id string, poll bool) (SentFollowup, error) {
	if id != "f-1" {
		return SentFollowup{}, fmt.Errorf("follow-up %s: %w", id, ErrNotFound)
	}
	rec := SentFollowup{ID: id, User: "ann", Status: FollowupOpen}
	if poll {
		rec.Status, rec.Answer = FollowupAnswered, &FollowupAnswer{Outcome: "shared", Handling: "H2", Shared: []FollowupSharedItem{{Hit: 2, Reference: "TH-1"}}}
	}
	return rec, nil
}

// TestFollowupOutRoutes drives the querier's follow-up routes through the
// client: the request reaches the backend whole, a number that is no hit
// is a 400, an unknown follow-up a 404, and poll=true reaches the backend.
func TestFollowupOutRoutes(t *testing.T) {
	srv := httptest.NewServer(New(Config{Backend: &stubBackend{}}))
	defer srv.Close()
	cl := &Client{BaseURL: srv.URL, Token: "good"}
	ctx := context.Background()
	rec, err := cl.Followup(ctx, "q-1", FollowupRequest{Partner: "TH", Hits: []int{2, 1}, Basis: "b", Purpose: "p"})
	if err != nil || rec.ID != "f-1" || rec.Partner != "TH" || rec.User != "ann" || !slices.Equal(rec.Hits, []int{2, 1}) {
		t.Errorf("Followup(q-1) = %+v, %v; want f-1 of ann at TH naming hits [2 1]", rec, err)
	}
	var he *Error
	if _, err := cl.Followup(ctx, "q-1", FollowupRequest{Partner: "TH", Hits: []int{3}}); !errors.As(err, &he) || he.Status != 400 {
		t.Errorf("Followup(hit 3) = %v; want a 400", err)
	}
	if _, err := cl.SentFollowup(ctx, "f-2", false); !errors.As(err, &he) || he.Status != 404 {
		t.Errorf("SentFollowup(f-2) = %v; want a 404", err)
	}
	if rec, err := cl.SentFollowup(ctx, "f-1", false); err != nil || rec.Answer != nil {
		t.Errorf("SentFollowup(f-1) = %+v, %v; want no answer without poll", rec, err)
	}
	rec, err = cl.SentFollowup(ctx, "f-1", true)
	if err != nil || rec.Answer == nil || rec.Answer.Shared[0].Reference != "TH-1" {
		t.Errorf("SentFollowup(f-1, poll) = %+v, %v; want the answer sharing TH-1", rec, err)
	}
	if recs, err := cl.Followups(ctx); err != nil || len(recs) != 1 || recs[0].ID != "f-1" {
		t.Errorf("Followups = %+v, %v; want f-1", recs, err)
	}
}

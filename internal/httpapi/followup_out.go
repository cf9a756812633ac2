package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The querier's side of step 2, the follow-up after a hit (issue 23,
// docs/followup.md): an investigator follows up hits of one partner's part
// of a query, and reads the partner's signed answer once it came.

// FollowupRequest follows up hits of one partner's part of a query
// (POST /v1/queries/{id}/followups).
type FollowupRequest struct {
	// Partner is the agency whose hits are followed up. With a query ID in
	// the path it is required; with a partner's request ID it may be
	// empty (it must name that partner when given).
	Partner string `json:"partner,omitempty"`
	// Hits are the numbers of the hits to follow up, as the query's answer
	// numbers them per partner (PartnerResult.HitNumbers; `xborder query`
	// prints them as #N): 1 to 64 distinct numbers.
	Hits    []int  `json:"hits"`
	Basis   string `json:"basis"`   // legal basis of the follow-up (required)
	Purpose string `json:"purpose"` // required
	Urgent  bool   `json:"urgent,omitempty"`
}

// Follow-up states (SentFollowup.Status).
const (
	FollowupSending  = "sending"  // recorded, not yet acknowledged (or the node stopped while sending)
	FollowupOpen     = "open"     // the partner acknowledged it; its answer is due by Deadline
	FollowupAnswered = "answered" // the partner's signed answer came (Answer)
	FollowupDenied   = "denied"   // the partner, or this node's policy, refused it (Reason)
	FollowupFailed   = "failed"   // no replica of the partner answered, or its answer did not verify (Reason)
)

// SentFollowup is a follow-up this agency sent, as the audit group's
// records hold it. It names the hits by their numbers, never by value.
type SentFollowup struct {
	ID        string    `json:"id"`         // the follow-up ID both ledgers record (32 hex digits)
	Query     string    `json:"query"`      // the query whose hits are followed up
	RequestID string    `json:"request_id"` // that query's request ID at Partner
	Partner   string    `json:"partner"`
	User      string    `json:"user"` // who followed up
	Kind      string    `json:"kind"`
	Mode      string    `json:"mode"`
	Hits      []int     `json:"hits"` // the hit numbers named, in the order sent (an answer's hit N is Hits[N-1])
	Reaches   []string  `json:"reaches"`
	Basis     string    `json:"basis"`
	Purpose   string    `json:"purpose"`
	Urgent    bool      `json:"urgent,omitempty"`
	Created   time.Time `json:"created"`
	Status    string    `json:"status"` // one of the Followup* states
	Reason    string    `json:"reason,omitempty"`
	// Deadline is when the partner's answer is due, as it acknowledged.
	Deadline time.Time `json:"deadline,omitzero"`
	// Overdue is set while open past the deadline.
	Overdue bool `json:"overdue,omitempty"`
	// Polled is the last time this node asked the partner for the answer.
	Polled time.Time `json:"polled,omitzero"`
	// OutIndex and ResultIndex are the ledger indexes of the followup_out
	// (or local denial) and followup_result entries.
	OutIndex    *uint64 `json:"out_index,omitempty"`
	ResultIndex *uint64 `json:"result_index,omitempty"`
	// AnsweredAt is when the partner decided (its signed answer's time).
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	// Answer is the partner's answer, verified under its pinned key when
	// shown: only in GET /v1/followups/{id}, to the user who followed up
	// and to auditors. Its shared hits are numbered as the query's answer
	// numbers them (not by their position in the follow-up).
	Answer *FollowupAnswer `json:"answer,omitempty"`
}

// FollowupOutBackend is the part of a Backend that follows up hits at
// partners. A Backend without it has none of these routes.
type FollowupOutBackend interface {
	// Followup follows up hits of query id (a query ID, or a partner's
	// request ID): u must be the user who asked (or one whose role may
	// approve the kind) and the policy in force must let u follow up the
	// kind (action followup). A hit number that is no hit is ErrBadRequest,
	// before anything is recorded or sent.
	Followup(ctx context.Context, u User, id string, req FollowupRequest) (SentFollowup, error)
	// Followups lists u's follow-ups (an auditor's: every one), newest
	// first, without their answers.
	Followups(ctx context.Context, u User) ([]SentFollowup, error)
	// SentFollowup returns one follow-up with its verified answer: to
	// the user who sent it and to auditors (action read_followup), else
	// ErrForbidden. With poll, an open follow-up is polled first (the
	// answer, if it came, is recorded on the ledger as the poll loop
	// records it).
	SentFollowup(ctx context.Context, u User, id string, poll bool) (SentFollowup, error)
}

// followupOutRoutes registers the querier's follow-up routes.
func (s *Server) followupOutRoutes() {
	b, ok := s.cfg.Backend.(FollowupOutBackend)
	if !ok {
		return
	}
	s.auth("POST /v1/queries/{id}/followups", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req FollowupRequest
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.Followup(ctx, u, r.PathValue("id"), req)
	})
	s.auth("GET /v1/followups", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Followups(ctx, u)
	})
	s.auth("GET /v1/followups/{id}", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.SentFollowup(ctx, u, r.PathValue("id"), r.URL.Query().Get("poll") == "true")
	})
}

// Followup follows up hits of query (or request) id
// (POST /v1/queries/{id}/followups).
func (c *Client) Followup(ctx context.Context, id string, req FollowupRequest) (SentFollowup, error) {
	var out SentFollowup
	err := c.do(ctx, http.MethodPost, "/v1/queries/"+url.PathEscape(id)+"/followups", req, &out)
	return out, err
}

// Followups lists the caller's follow-ups (GET /v1/followups).
func (c *Client) Followups(ctx context.Context) ([]SentFollowup, error) {
	var out []SentFollowup
	err := c.do(ctx, http.MethodGet, "/v1/followups", nil, &out)
	return out, err
}

// SentFollowup returns follow-up id with its answer (GET
// /v1/followups/{id}); poll: ask the partner first when it is open.
func (c *Client) SentFollowup(ctx context.Context, id string, poll bool) (SentFollowup, error) {
	var out SentFollowup
	if id == "" {
		return out, fmt.Errorf("follow-up: no ID: %w", ErrBadRequest)
	}
	path := "/v1/followups/" + url.PathEscape(id)
	if poll {
		path += "?poll=true"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

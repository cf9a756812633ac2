package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// MaxFollowupText bounds the message and the refusal reason of a
// follow-up's answer, in bytes.
const MaxFollowupText = 2000

// FollowupInboxItem is one partner's follow-up in the liaison's inbox
// (issue 23, docs/followup.md): what the partner asked, the records its
// hits named, the deadline and, once decided, the answer.
type FollowupInboxItem struct {
	ID        string    `json:"id"`         // follow-up ID, 32 hex digits
	Partner   string    `json:"partner"`    // the agency that follows up
	RequestID string    `json:"request_id"` // the match request it follows up
	Kind      string    `json:"kind"`
	Epoch     uint64    `json:"epoch"`
	Mode      string    `json:"mode"`
	Basis     string    `json:"basis"` // legal basis
	Purpose   string    `json:"purpose"`
	Urgent    bool      `json:"urgent"`
	Received  time.Time `json:"received"`
	Deadline  time.Time `json:"deadline"`
	Overdue   bool      `json:"overdue"` // open past the deadline
	// State is open, shared or refused.
	State string        `json:"state"`
	Hits  []FollowupHit `json:"hits"`
	// Handling is the agreement's handling code for this partner and kind.
	Handling string `json:"handling,omitempty"`
	// Actor, AnsweredAt and Answer are set once decided: the liaison
	// (user:NAME) or "auto" when the node answered on its own.
	Actor      string          `json:"actor,omitempty"`
	AnsweredAt time.Time       `json:"answered_at,omitzero"`
	Answer     *FollowupAnswer `json:"answer,omitempty"`
}

// FollowupHit is one hit a follow-up names, numbered 1 to n in the order
// of the request, with the records of this agency it names (none: it
// names nothing held now).
type FollowupHit struct {
	Hit     int              `json:"hit"`
	Reach   string           `json:"reach"` // open, victim or witness
	Records []FollowupRecord `json:"records"`
}

// FollowupRecord is one of this agency's records a hit names, for the
// liaison's eyes only.
type FollowupRecord struct {
	Class     string `json:"class"` // suspect, victim, witness or unknown
	Reference string `json:"reference,omitempty"`
	Contact   string `json:"contact,omitempty"`
	Handling  string `json:"handling,omitempty"` // H0-H3; empty for rows imported before per-row codes
	// Changed: the record was removed or its batch rewritten since the
	// follow-up arrived; look it up again by other means.
	Changed bool `json:"changed,omitempty"`
}

// FollowupAnswer is an owner's signed decision as shown (the querier
// sees the same fields).
type FollowupAnswer struct {
	Outcome  string               `json:"outcome"` // shared or refused
	Reason   string               `json:"reason,omitempty"`
	Handling string               `json:"handling,omitempty"`
	Message  string               `json:"message,omitempty"`
	Shared   []FollowupSharedItem `json:"shared,omitempty"`
	Digest   string               `json:"digest"` // SHA-256 of the signed answer's bytes, hex: the ledger entry's digest
}

// FollowupSharedItem is what an answer shares of one hit.
type FollowupSharedItem struct {
	Hit       int    `json:"hit"`
	Reference string `json:"reference,omitempty"`
	Contact   string `json:"contact,omitempty"`
	Handling  string `json:"handling,omitempty"` // where it differs from the answer's
}

// AnswerFollowup is a liaison's decision on a follow-up: share (some of
// "reference" and "contact") under a handling code, with a message; or
// refuse with a reason.
type AnswerFollowup struct {
	Share    []string `json:"share,omitempty"`
	Handling string   `json:"handling,omitempty"` // H0-H3; required when sharing
	Message  string   `json:"message,omitempty"`
	Refuse   bool     `json:"refuse,omitempty"`
	Reason   string   `json:"reason,omitempty"` // required when refusing
}

// Check says what is wrong with a, or nil.
func (a AnswerFollowup) Check() error {
	switch {
	case a.Refuse && (len(a.Share) > 0 || a.Handling != ""):
		return fmt.Errorf("a refusal shares nothing: give either refuse and a reason, or share and a handling code: %w", ErrBadRequest)
	case a.Refuse && (strings.TrimSpace(a.Reason) == "" || len(a.Reason) > MaxFollowupText):
		return fmt.Errorf("a refusal needs a reason of 1 to %d bytes: %w", MaxFollowupText, ErrBadRequest)
	case !a.Refuse && a.Reason != "":
		return fmt.Errorf("a reason is for a refusal: give refuse too, or leave the reason out: %w", ErrBadRequest)
	case !a.Refuse && len(a.Share) == 0:
		return fmt.Errorf("say what to share (reference, contact) or refuse: %w", ErrBadRequest)
	case !a.Refuse && !slices.Contains([]string{"H0", "H1", "H2", "H3"}, a.Handling):
		return fmt.Errorf("handling code %q: give H0 to H3 for what is shared: %w", a.Handling, ErrBadRequest)
	case len(a.Message) > MaxFollowupText:
		return fmt.Errorf("the message is over %d bytes: %w", MaxFollowupText, ErrBadRequest)
	}
	for i, s := range a.Share {
		if s != "reference" && s != "contact" || slices.Contains(a.Share[:i], s) {
			return fmt.Errorf("share %q: give reference, contact or both, once each: %w", s, ErrBadRequest)
		}
	}
	return nil
}

// FollowupInboxBackend is a Backend whose agency answers partners'
// follow-ups (GET /v1/followups/inbox, POST
// /v1/followups/inbox/{id}/answer). A Backend without it has no such
// routes.
type FollowupInboxBackend interface {
	// FollowupInbox lists the follow-ups of the kinds u may answer
	// (policy action answer_followup), open and answered, by deadline,
	// earliest first. A user who may answer no kind is refused
	// (ErrForbidden).
	FollowupInbox(ctx context.Context, u User) ([]FollowupInboxItem, error)
	// AnswerFollowup decides follow-up id for u (answer_followup on its
	// kind): signs the answer, commits it and its followup_answer entry.
	// ErrNotFound: no such follow-up; ErrConflict: already answered.
	AnswerFollowup(ctx context.Context, u User, id string, a AnswerFollowup) (FollowupInboxItem, error)
}

// followupInRoutes registers the liaison's routes.
func (s *Server) followupInRoutes() {
	b, ok := s.cfg.Backend.(FollowupInboxBackend)
	if !ok {
		return
	}
	s.auth("GET /v1/followups/inbox", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.FollowupInbox(ctx, u)
	})
	s.auth("POST /v1/followups/inbox/{id}/answer", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req AnswerFollowup
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		if err := req.Check(); err != nil {
			return nil, fmt.Errorf("answer follow-up %s: %w", r.PathValue("id"), err)
		}
		return b.AnswerFollowup(ctx, u, r.PathValue("id"), req)
	})
}

// FollowupInbox lists the liaison's inbox (GET /v1/followups/inbox).
func (c *Client) FollowupInbox(ctx context.Context) ([]FollowupInboxItem, error) {
	var out []FollowupInboxItem
	err := c.do(ctx, http.MethodGet, "/v1/followups/inbox", nil, &out)
	return out, err
}

// AnswerFollowup answers or refuses follow-up id (POST
// /v1/followups/inbox/{id}/answer).
func (c *Client) AnswerFollowup(ctx context.Context, id string, a AnswerFollowup) (FollowupInboxItem, error) {
	var out FollowupInboxItem
	err := c.do(ctx, http.MethodPost, "/v1/followups/inbox/"+url.PathEscape(id)+"/answer", a, &out)
	return out, err
}

package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// MaxRefusalReason bounds the reason of a refusal, in bytes.
const MaxRefusalReason = 500

// RefuseRequest is an approver's refusal of a pending query.
type RefuseRequest struct {
	Reason string `json:"reason"` // why, for the investigator: 1 to MaxRefusalReason bytes
}

// RefuseBackend is a QueryBackend whose approvers may refuse a pending
// query with a reason (POST /v1/queries/{id}/refuse). A Backend without it
// has no such route.
type RefuseBackend interface {
	// Refuse refuses pending query id: it never runs. The node decides,
	// as for Approve, whether u may (another user than its author, with
	// a role that may approve its kind), and records the refusal.
	Refuse(ctx context.Context, u User, id, reason string) (QueryRecord, error)
}

// refuseRoutes registers the refusal route.
func (s *Server) refuseRoutes() {
	b, ok := s.cfg.Backend.(RefuseBackend)
	if !ok {
		return
	}
	s.auth("POST /v1/queries/{id}/refuse", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req RefuseRequest
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		if req.Reason = strings.TrimSpace(req.Reason); req.Reason == "" || len(req.Reason) > MaxRefusalReason {
			return nil, fmt.Errorf("refuse %s: give a reason of 1 to %d bytes: %w", r.PathValue("id"), MaxRefusalReason, ErrBadRequest)
		}
		return b.Refuse(ctx, u, r.PathValue("id"), req.Reason)
	})
}

// Refuse refuses pending query id with reason
// (POST /v1/queries/{id}/refuse).
func (c *Client) Refuse(ctx context.Context, id, reason string) (QueryRecord, error) {
	var out QueryRecord
	err := c.do(ctx, http.MethodPost, "/v1/queries/"+url.PathEscape(id)+"/refuse", RefuseRequest{Reason: reason}, &out)
	return out, err
}

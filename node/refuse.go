package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// queryRefused is the state of a query record an approver refused: it
// never runs.
const queryRefused = "refused"

// approvalRefused is the purpose of the approval entry of a refusal.
const approvalRefused = "query refused"

// Refuse refuses a pending query with a reason: the same users as may
// approve it may refuse it (another user than its author, whose role the
// policy in force lets approve the kind). The refusal is an approval entry
// with outcome denied, then the record, refused, with the reason for its
// author; the reason stays in the record and never reaches the ledger.
func (q *querier) Refuse(ctx context.Context, u httpapi.User, id, reason string) (httpapi.QueryRecord, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > httpapi.MaxRefusalReason {
		return httpapi.QueryRecord{}, fmt.Errorf("refuse %s: give a reason of 1 to %d bytes: %w", id, httpapi.MaxRefusalReason, httpapi.ErrBadRequest)
	}
	rec, err := q.queryRecord(id)
	if err != nil {
		return httpapi.QueryRecord{}, err
	}
	if rec.User == u.Name {
		return httpapi.QueryRecord{}, fmt.Errorf("refuse %s: an investigator cannot decide on their own query: %w", id, httpapi.ErrForbidden)
	}
	d := q.cfg.Policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role}, Action: "approve",
		Kind: rec.Kind, Time: q.cfg.Now().UTC()})
	if !d.Allow {
		return httpapi.QueryRecord{}, fmt.Errorf("refuse %s: role %s may not approve or refuse %s queries under the policy in force: %w", id, u.Role, rec.Kind, httpapi.ErrForbidden)
	}
	if rec.Status != queryPending {
		return httpapi.QueryRecord{}, fmt.Errorf("refuse %s: it is %s, not pending: %w", id, rec.Status, httpapi.ErrConflict)
	}
	rec.Status, rec.Approver = queryRefused, u.Name
	e := approvalEntry(rec, approvalRefused, u.Name)
	e.Header.Outcome = ledger.OutcomeDenied
	if _, err := q.cfg.Audit.Append(ctx, e); err != nil {
		return httpapi.QueryRecord{}, fmt.Errorf("refuse %s: %w", id, err)
	}
	rec.Reason = reason
	if err := q.putQueryRecord(ctx, rec); err != nil {
		return httpapi.QueryRecord{}, err
	}
	q.cfg.Log.Info("query refused", "query", id)
	return *rec, nil
}

// Refuse refuses a pending query (httpapi.RefuseBackend, console.Refuser).
func (b *backend) Refuse(ctx context.Context, u httpapi.User, id, reason string) (httpapi.QueryRecord, error) {
	return b.querier.Refuse(ctx, u, id, reason)
}

package node

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// nsQueries holds the queries that needed an approver (key: query ID;
// value: httpapi.QueryRecord JSON). A record holds what the approver
// decides on (kind, partners, padded size, case, legal basis, offence,
// purpose) and the commitment to the query set under a case key the node
// does not keep, never the values: the investigator's client keeps them and
// the case key, and sends them again to run the approved query.
const nsQueries = "queries"

// approvalSpent is how long the ledger keeps an approval's run spent (its
// replay window): for good. Pruning may drop the spent mark after the
// retention; the record, marked done before the run, still refuses it.
const approvalSpent = 100 * 365 * 24 * time.Hour

// Purposes of the approval entries (ledger.TypeApproval), one per step.
const (
	approvalPending  = "query pending approval"
	approvalApproved = "query approved"
	approvalRun      = "approved query run"
)

// Query record states.
const (
	queryPending  = "pending"
	queryApproved = "approved"
	queryDone     = "done"
)

// newQueryID draws a query ID: "q-" and 16 hex digits.
func newQueryID() (string, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("query: draw ID: %w", err)
	}
	return "q-" + hex.EncodeToString(id[:]), nil
}

// recordPending records a query that waits for an approver, bound to the
// commitment of its query set: an approval entry, then the record.
func (q *querier) recordPending(ctx context.Context, u httpapi.User, req httpapi.QueryRequest, partners []string, p *queryPlan) (*httpapi.QueryRecord, error) {
	rec := &httpapi.QueryRecord{ID: p.id, User: u.Name, Kind: req.Kind, Case: req.Case, Basis: req.Basis,
		Offence: req.Offence, Purpose: req.Purpose, Urgent: req.Urgent, Mode: p.mode, Reaches: req.Reaches, Partners: partners, PaddedSize: p.padded,
		Created: q.cfg.Now().UTC(), Status: queryPending, Commitment: hex.EncodeToString(p.commit[:])}
	if _, err := q.cfg.Audit.Append(ctx, approvalEntry(rec, approvalPending, u.Name)); err != nil {
		return nil, fmt.Errorf("record query %s: %w", rec.ID, err)
	}
	if err := q.putQueryRecord(ctx, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// recordMode is the mode of a query record: enforcement for a record made
// before modes.
func recordMode(rec *httpapi.QueryRecord) string {
	if rec.Mode == "" {
		return modeEnforcement
	}
	return rec.Mode
}

// approvalEntry is the audit entry of one step of an approval: the header
// names the query, its kind, padded size and the commitment to its query
// set; the body who acted, the approver once there is one, and the case.
func approvalEntry(rec *httpapi.QueryRecord, step, actor string) ledger.Entry {
	var commit ledger.Digest
	_, _ = hex.Decode(commit[:], []byte(rec.Commitment))
	urg := uint8(0)
	if rec.Urgent {
		urg = 1
	}
	approver := ""
	if rec.Approver != "" {
		approver = "user:" + rec.Approver
	}
	return ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeApproval, Outcome: ledger.OutcomeOK, RequestID: rec.ID, Kind: rec.Kind,
			PaddedSize: uint64(rec.PaddedSize), Urgency: urg, Digest: commit, Mode: recordMode(rec)},
		Body: ledger.Body{Actor: "user:" + actor, Approver: approver, Purpose: step, LegalBasis: rec.Basis,
			Offence: rec.Offence, CaseRef: rec.Case},
	}
}

func (q *querier) putQueryRecord(ctx context.Context, rec *httpapi.QueryRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("record query %s: %w", rec.ID, err)
	}
	if _, err := q.cfg.Audit.Put(ctx, nsQueries, rec.ID, b); err != nil {
		return fmt.Errorf("record query %s: %w", rec.ID, err)
	}
	return nil
}

func (q *querier) queryRecord(id string) (*httpapi.QueryRecord, error) {
	b, err := q.cfg.Audit.Get(nsQueries, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("query %s: no such query: %w", id, httpapi.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", id, err)
	}
	var rec httpapi.QueryRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("query %s: stored record: %w", id, err)
	}
	return &rec, nil
}

// recordInForce returns the query record id as the agency holds it: read
// after a linearizable barrier, so that an approval or a run decides on
// every change committed before it (on whichever replica), not on this
// replica's copy, which may lag. A replica that cannot tell (no quorum)
// answers unavailable.
func (q *querier) recordInForce(ctx context.Context, id string) (*httpapi.QueryRecord, error) {
	if err := q.cfg.Audit.Linearize(ledger.FailFast(ctx)); err != nil {
		return nil, fmt.Errorf("query %s: read the query records: %w: %w", id, err, httpapi.ErrUnavailable)
	}
	return q.queryRecord(id)
}

// approvedRecord returns the record of an approved query that u runs with
// the same kind, case, legal basis, offence, purpose, urgency, partners
// and padded size as were approved, and the very query set: the case key of
// the pending answer, sent back, must give the commitment recorded. It sets
// p's case key and commitment to those of the approval.
func (q *querier) approvedRecord(ctx context.Context, u httpapi.User, req httpapi.QueryRequest, partners []string, p *queryPlan) (*httpapi.QueryRecord, error) {
	rec, err := q.recordInForce(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	key, kerr := hex.DecodeString(req.CaseKey)
	if kerr == nil && len(key) != len(p.caseKey) {
		kerr = errors.New("wrong length")
	}
	if kerr != nil {
		return nil, fmt.Errorf("query %s: give the case key of its pending answer to run it: %w", rec.ID, httpapi.ErrBadRequest)
	}
	copy(p.caseKey[:], key)
	p.commit = querySetCommitment(p.caseKey, p.inputs)
	switch {
	case rec.User != u.Name:
		return nil, fmt.Errorf("query %s: made by another user: %w", rec.ID, httpapi.ErrForbidden)
	case rec.Status == queryPending:
		return nil, fmt.Errorf("query %s: still waits for an approver (xborder approve %s): %w", rec.ID, rec.ID, httpapi.ErrForbidden)
	case rec.Status == queryRefused: // refuse.go
		return nil, fmt.Errorf("query %s: refused by %s (%s): it never runs: %w", rec.ID, rec.Approver, rec.Reason, httpapi.ErrForbidden)
	case rec.Status != queryApproved:
		return nil, fmt.Errorf("query %s: already run; an approval is good for one run: %w", rec.ID, httpapi.ErrConflict)
	case rec.Kind != req.Kind || rec.Case != req.Case || rec.Basis != req.Basis || rec.Offence != req.Offence ||
		rec.Purpose != req.Purpose || rec.Urgent != req.Urgent || !slices.Equal(rec.Partners, partners) || rec.PaddedSize != p.padded ||
		recordMode(rec) != p.mode || !slices.Equal(rec.Reaches, req.Reaches):
		return nil, fmt.Errorf("query %s: differs from what was approved (kind, case, basis, offence, purpose, urgency, mode, reaches, partners or size): %w", rec.ID, httpapi.ErrConflict)
	case !hmac.Equal([]byte(hex.EncodeToString(p.commit[:])), []byte(rec.Commitment)):
		// Also a record approved before approvals were bound to the set.
		return nil, fmt.Errorf("query %s: the values (or the case key) are not those that were approved: %w", rec.ID, httpapi.ErrConflict)
	}
	return rec, nil
}

// spendApproval uses the approval of rec up, before the query runs: an
// approval entry admitted under the query ID, which the ledger then holds
// spent (a second run, even in parallel on another replica, is refused with
// ErrConflict), and the record marked done. Nothing runs unless both are
// committed.
func (q *querier) spendApproval(ctx context.Context, u httpapi.User, rec *httpapi.QueryRecord) error {
	_, err := q.cfg.Audit.Admit(ctx, ledger.Admission{Entry: approvalEntry(rec, approvalRun, u.Name),
		PolicyVersion: q.cfg.Audit.Status().Policy, ReplayWindow: approvalSpent})
	switch {
	case errors.Is(err, ledger.ErrReplay):
		return fmt.Errorf("query %s: already run; an approval is good for one run: %w", rec.ID, httpapi.ErrConflict)
	case errors.Is(err, ledger.ErrStalePolicy):
		return fmt.Errorf("query %s: the policy changed as it started, and its approval is spent: make the query again for a new approval: %w", rec.ID, httpapi.ErrConflict)
	case err != nil:
		return fmt.Errorf("query %s: the approval could not be recorded as used, so nothing was sent: %w: %w", rec.ID, err, httpapi.ErrUnavailable)
	}
	rec.Status = queryDone
	if err := q.putQueryRecord(ctx, rec); err != nil {
		return fmt.Errorf("%w: %w", err, httpapi.ErrUnavailable)
	}
	return nil
}

// Approve signs off a pending query. The approver must be another user
// than the one who made it, and the policy in force must let the
// approver's role approve the query's kind.
func (q *querier) Approve(ctx context.Context, u httpapi.User, id string) (httpapi.QueryRecord, error) {
	rec, err := q.recordInForce(ctx, id)
	if err != nil {
		return httpapi.QueryRecord{}, err
	}
	if rec.User == u.Name {
		return httpapi.QueryRecord{}, fmt.Errorf("approve %s: an investigator cannot approve their own query: %w", id, httpapi.ErrForbidden)
	}
	d := q.cfg.Policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role}, Action: "approve",
		Kind: rec.Kind, Time: q.cfg.Now().UTC()})
	if !d.Allow {
		return httpapi.QueryRecord{}, fmt.Errorf("approve %s: role %s may not approve %s queries under the policy in force: %w", id, u.Role, rec.Kind, httpapi.ErrForbidden)
	}
	if rec.Status != queryPending {
		return httpapi.QueryRecord{}, fmt.Errorf("approve %s: it is %s, not pending: %w", id, rec.Status, httpapi.ErrConflict)
	}
	rec.Status, rec.Approver, rec.Approved = queryApproved, u.Name, q.cfg.Now().UTC()
	if _, err := q.cfg.Audit.Append(ctx, approvalEntry(rec, approvalApproved, u.Name)); err != nil {
		return httpapi.QueryRecord{}, fmt.Errorf("approve %s: %w", id, err)
	}
	if err := q.putQueryRecord(ctx, rec); err != nil {
		return httpapi.QueryRecord{}, err
	}
	q.cfg.Log.Info("query approved", "query", id)
	return *rec, nil
}

// mayView reports whether u may see rec: its author, or a user whose role
// may approve its kind.
func (q *querier) mayView(u httpapi.User, rec *httpapi.QueryRecord) bool {
	if rec.User == u.Name {
		return true
	}
	return q.cfg.Policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role}, Action: "approve",
		Kind: rec.Kind, Time: q.cfg.Now().UTC()}).Allow
}

// Queries lists the query records u may see, oldest first; pending: only
// those that wait for an approver.
func (q *querier) Queries(u httpapi.User, pending bool) ([]httpapi.QueryRecord, error) {
	out := []httpapi.QueryRecord{}
	err := q.cfg.Audit.Scan(nsQueries, "", func(_ string, v []byte) error {
		var rec httpapi.QueryRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("list queries: stored record: %w", err)
		}
		if (!pending || rec.Status == queryPending) && q.mayView(u, &rec) {
			out = append(out, rec)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// QueryRecord returns one query record, when u may see it.
func (q *querier) QueryRecord(u httpapi.User, id string) (httpapi.QueryRecord, error) {
	rec, err := q.queryRecord(id)
	if err != nil {
		return httpapi.QueryRecord{}, err
	}
	if !q.mayView(u, rec) {
		return httpapi.QueryRecord{}, fmt.Errorf("query %s: no such query: %w", id, httpapi.ErrNotFound)
	}
	return *rec, nil
}

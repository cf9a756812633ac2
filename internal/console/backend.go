package console

import (
	"context"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// Backend is what the console needs of a node: the same calls the HTTP API
// makes (internal/httpapi's Backend and QueryBackend), so that every page
// goes through the node's users, policy and ledger, and one more,
// EntryProof, which proves an entry in the tree of a given size. Every
// method that reads or changes audited state takes the acting user, whom
// the node records.
type Backend interface {
	// Authenticate returns the user holding token, or an error wrapping
	// httpapi.ErrUnauthorized.
	Authenticate(token string) (httpapi.User, error)
	// Authorize returns nil when the policy in force lets u do action
	// (one of policy.Actions that names no kind), or an error wrapping
	// httpapi.ErrForbidden.
	Authorize(u httpapi.User, action string) error
	// Users lists the local users: a session and a sign-in link are good
	// only while their user exists, with the role it has now.
	Users(ctx context.Context) ([]httpapi.User, error)

	// Status is the replica's view of itself and its groups.
	Status() httpapi.Status
	Replicas(ctx context.Context) ([]httpapi.Replica, error)
	Partners(ctx context.Context) ([]httpapi.Partner, error)
	PolicyVersion() string

	// Entries lists ledger entries (the read is recorded first).
	Entries(ctx context.Context, actor httpapi.User, purpose string, f ledger.Filter) ([]ledger.Entry, error)
	// EntryProof returns entry index with its RFC 6962 inclusion proof in
	// the tree of size entries (0: the current size), the read recorded
	// first. The console asks for the size of the signed checkpoint it
	// verified, so that the proof leads to that checkpoint's root.
	EntryProof(ctx context.Context, actor httpapi.User, purpose string, index, size uint64) (httpapi.EntryProof, error)
	// Checkpoint returns the newest signed checkpoint and the newest one
	// the partners' witnesses cosigned.
	Checkpoint(ctx context.Context) (httpapi.Published, error)
	// Export exports the ledger (recorded as an export entry).
	Export(ctx context.Context, actor httpapi.User) (httpapi.Export, error)
	// DataStats describes the holdings and their encoded sets.
	DataStats(ctx context.Context, u httpapi.User) (httpapi.DataStats, error)

	// Query runs a match query, or records it pending for an approver.
	Query(ctx context.Context, u httpapi.User, req httpapi.QueryRequest) (httpapi.QueryResult, error)
	// Queries lists the queries that needed an approver; pending: only
	// those still waiting.
	Queries(ctx context.Context, u httpapi.User, pending bool) ([]httpapi.QueryRecord, error)
	// Approve signs off a pending query.
	Approve(ctx context.Context, u httpapi.User, id string) (httpapi.QueryRecord, error)
}

// Refuser is a Backend that lets an approver refuse a pending query with a
// reason, which the node records. The API has no such call yet: with a
// Backend that does not implement it, the approvals page offers approval
// only and the refuse route answers 404.
type Refuser interface {
	Refuse(ctx context.Context, u httpapi.User, id, reason string) (httpapi.QueryRecord, error)
}

// Progresser is a Backend that reports a query's progress: the same query
// as Query, telling asking, once and before any partner is asked, the
// query's ID and the partners it asks (sorted; never for a query that
// waits for an approver), and answered each partner's part as it
// completes, whatever the outcome. Both may be called from the query's
// goroutines concurrently. With a Backend that does not implement it,
// the progress page says only that the query runs.
type Progresser interface {
	QueryProgress(ctx context.Context, u httpapi.User, req httpapi.QueryRequest,
		asking func(id string, partners []string), answered func(httpapi.PartnerResult)) (httpapi.QueryResult, error)
}

// Operator is a Backend that shows admins and stewards what the status
// page does not: the copies of partners' sets and the budgets.
type Operator interface {
	// SyncStates lists this replica's copies of partners' sets, by
	// partner, kind and reach.
	SyncStates(ctx context.Context) ([]httpapi.SyncState, error)
	// Budgets lists the budgets of the policy in force and their use
	// today; caseRef, when not empty, adds the budget of that local case.
	Budgets(ctx context.Context, u httpapi.User, caseRef string) ([]httpapi.Budget, error)
}

package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// QueryRequest asks partners whether they hold identifiers. Values are
// canonical forms (ident.Canonical) of Kind; they stay on this node and
// never reach a ledger entry, a log line or a partner.
type QueryRequest struct {
	// ID names an approved pending query to run (from an earlier answer
	// with status "pending"); empty for a new query.
	ID string `json:"id,omitempty"`
	// CaseKey is, with ID, the case key of the pending answer (hex): the
	// node checks that Values are the set that was approved, and records
	// the run's results under the same commitment.
	CaseKey  string   `json:"case_key,omitempty"`
	Kind     string   `json:"kind"`
	Case     string   `json:"case"`
	Basis    string   `json:"basis"`
	Offence  string   `json:"offence"`
	Purpose  string   `json:"purpose,omitempty"`
	Urgent   bool     `json:"urgent,omitempty"`
	Partners []string `json:"partners,omitempty"` // agency codes; empty: every partner policy allows for Kind
	Values   []string `json:"values"`
	// Mode is "enforcement" (also when empty) or "safeguarding": an
	// enforcement query asks partners' open reach only (suspects and
	// records of unknown class); a safeguarding query also asks the victim
	// and witness reaches the partner agreement opens, and always waits for
	// an approver (docs/victims.md).
	Mode string `json:"mode,omitempty"`
	// Reaches narrows the reaches asked (open, victim, witness); empty:
	// every reach the mode may ask of each partner. A reach the mode may
	// not ask is refused by this node's policy (reach_not_allowed) and
	// recorded; nothing is sent.
	Reaches []string `json:"reaches,omitempty"`
}

// Query outcomes per partner.
const (
	OutcomeHits        = "hits"        // the partner holds Hits
	OutcomeNoHits      = "no_hits"     // the partner holds none of the values
	OutcomeStale       = "stale"       // the partner's set could not be brought up to date: Hits are real hits, the rest unknown
	OutcomeDenied      = "denied"      // the partner, or this node's policy, denied the query (Reason)
	OutcomeUnavailable = "unavailable" // the partner or this node's ledger could not serve (Reason)
	OutcomeFailed      = "failed"      // the answer did not verify (Reason); nothing of it is used
)

// QueryResult is the answer to a query: per partner, or the pending
// record when the query waits for an approver.
type QueryResult struct {
	ID         string `json:"id"`
	Status     string `json:"status"` // "done" or "pending"
	Kind       string `json:"kind"`
	Values     int    `json:"values"`      // distinct values asked
	PaddedSize int    `json:"padded_size"` // after padding
	// CaseKey is the random key of the query-set commitment recorded on
	// every result entry (hex): keep it in the case file; the node does
	// not keep it. A pending answer gives it too: send it back with the
	// ID to run the approved query.
	CaseKey  string          `json:"case_key,omitempty"`
	Mode     string          `json:"mode"` // enforcement or safeguarding
	Partners []PartnerResult `json:"partners,omitempty"`
}

// PartnerResult is one partner's part of a query.
type PartnerResult struct {
	Agency    string `json:"agency"`
	RequestID string `json:"request_id,omitempty"` // the ID both ledgers record
	Outcome   string `json:"outcome"`              // one of the Outcome constants
	Reason    string `json:"reason,omitempty"`     // why denied, unavailable or failed
	// Hits are indexes into the request's Values.
	Hits []int `json:"hits,omitempty"`
	// HitReaches gives the reach of each hit, in the order of Hits: open
	// (the partner holds it as a suspect's or of unknown class), victim or
	// witness. A victim or witness hit is for the care of that person,
	// never for enforcement: follow Handling and Instruction.
	HitReaches []string `json:"hit_reaches,omitempty"`
	// HitNumbers numbers the hits for a follow-up, in the order of Hits:
	// 1 to n per partner, one number per identifier and reach (two lines
	// of one identifier share it). Empty when this node keeps nothing to
	// follow the hits up with (no hits, or the record failed).
	HitNumbers []int `json:"hit_numbers,omitempty"`
	// Reaches are the reaches asked of this partner.
	Reaches []string `json:"reaches,omitempty"`
	// Handling and Instruction are the safeguarding handling code and
	// instruction of the agreement with this partner, for a safeguarding
	// query.
	Handling      string  `json:"handling,omitempty"`
	Instruction   string  `json:"instruction,omitempty"`
	HitCount      int     `json:"hit_count"`
	Epoch         uint64  `json:"epoch,omitempty"`
	SetVersion    uint32  `json:"set_version,omitempty"`
	OutboundIndex *uint64 `json:"outbound_index,omitempty"` // ledger index of the match_out (or local denial) entry
	ResultIndex   *uint64 `json:"result_index,omitempty"`   // ledger index of the match_result entry
	Millis        int64   `json:"millis"`
}

// QueryRecord is a query that needed an approver: a replicated record
// holding what the approver decides on, never the values.
type QueryRecord struct {
	ID         string    `json:"id"`
	User       string    `json:"user"`
	Kind       string    `json:"kind"`
	Case       string    `json:"case"`
	Basis      string    `json:"basis"`
	Offence    string    `json:"offence"`
	Purpose    string    `json:"purpose,omitempty"`
	Urgent     bool      `json:"urgent,omitempty"`
	Mode       string    `json:"mode,omitempty"`    // enforcement or safeguarding; empty in records before modes: enforcement
	Reaches    []string  `json:"reaches,omitempty"` // the reaches asked, when the query narrowed them
	Partners   []string  `json:"partners"`
	PaddedSize int       `json:"padded_size"`
	Created    time.Time `json:"created"`
	Status     string    `json:"status"`             // pending, approved, done, refused
	Approver   string    `json:"approver,omitempty"` // who approved or refused it
	Approved   time.Time `json:"approved,omitzero"`
	Reason     string    `json:"reason,omitempty"` // why the approver refused it (status refused)
	// Commitment is the HMAC-SHA256 of the framed query set under the
	// case key of the pending answer (hex), which the node does not keep:
	// the approval is good for that set only, and once.
	Commitment string `json:"commitment"`
}

// QueryBackend is the part of a Backend that runs match queries. A
// Backend without it answers the query routes 404.
type QueryBackend interface {
	Query(ctx context.Context, u User, req QueryRequest) (QueryResult, error)
	Queries(ctx context.Context, u User, pending bool) ([]QueryRecord, error)
	QueryRecord(ctx context.Context, u User, id string) (QueryRecord, error)
	Approve(ctx context.Context, u User, id string) (QueryRecord, error)
}

// queryRoutes registers the query routes. Their policy checks (action
// match or approve, on the kind) are the backend's: the route alone names
// no kind.
func (s *Server) queryRoutes() {
	qb := func() (QueryBackend, error) {
		q, ok := s.cfg.Backend.(QueryBackend)
		if !ok {
			return nil, fmt.Errorf("this node runs no queries: %w", ErrNotFound)
		}
		return q, nil
	}
	s.auth("POST /v1/queries", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req QueryRequest
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		q, err := qb()
		if err != nil {
			return nil, err
		}
		return q.Query(ctx, u, req)
	})
	s.auth("GET /v1/queries", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		q, err := qb()
		if err != nil {
			return nil, err
		}
		return q.Queries(ctx, u, r.URL.Query().Get("status") == "pending")
	})
	s.auth("GET /v1/queries/{id}", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		q, err := qb()
		if err != nil {
			return nil, err
		}
		return q.QueryRecord(ctx, u, r.PathValue("id"))
	})
	s.auth("POST /v1/queries/{id}/approve", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		q, err := qb()
		if err != nil {
			return nil, err
		}
		return q.Approve(ctx, u, r.PathValue("id"))
	})
}

// Query runs a match query (or records it as pending for an approver).
func (c *Client) Query(ctx context.Context, req QueryRequest) (QueryResult, error) {
	var out QueryResult
	err := c.do(ctx, http.MethodPost, "/v1/queries", req, &out)
	return out, err
}

// Queries lists the queries that needed an approver; pending: only those
// still waiting.
func (c *Client) Queries(ctx context.Context, pending bool) ([]QueryRecord, error) {
	var out []QueryRecord
	path := "/v1/queries"
	if pending {
		path += "?status=pending"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// QueryRecord returns one query record.
func (c *Client) QueryRecord(ctx context.Context, id string) (QueryRecord, error) {
	var out QueryRecord
	err := c.do(ctx, http.MethodGet, "/v1/queries/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Approve signs off a pending query.
func (c *Client) Approve(ctx context.Context, id string) (QueryRecord, error) {
	var out QueryRecord
	err := c.do(ctx, http.MethodPost, "/v1/queries/"+url.PathEscape(id)+"/approve", nil, &out)
	return out, err
}

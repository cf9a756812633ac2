package node

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
	"github.com/xborder/xborder/psi"
)

// Query modes (docs/victims.md).
const (
	modeEnforcement  = "enforcement"
	modeSafeguarding = "safeguarding"
)

// DefaultPartnerTimeout bounds one partner's part of a query: syncing its
// set when stale, the outbound entry, the exchange and the result entry.
// A partner that takes longer fails alone.
const DefaultPartnerTimeout = 30 * time.Second

// livePolicy is the policy in force, which a decision refreshes first when
// the ledger has moved to another version (*policySource).
type livePolicy interface {
	Policy() *policy.Set
	refreshPolicy()
}

// pinnedCards are the partners' pinned cards in force (*cards).
type pinnedCards interface {
	Pins() map[string]*card.Card
}

// partnerSetSource is this node's copies of partners' encoded sets: the copy
// of (partner, kind, reach), synced first when stale, and the mark that
// makes the next one sync.
type partnerSetSource interface {
	partnerSet(ctx context.Context, partner, kind, reach string) (s *psi.Set, key *psi.PublicKey, epoch uint64, fresh bool, err error)
	expireCopy(partner, kind, reach string)
}

// matchClient asks one partner replica a match query over the host
// (*exchange.Client).
type matchClient interface {
	Match(ctx context.Context, o exchange.Opener, peer exchange.PeerID, q exchange.Query) (*exchange.Answer, error)
}

// matchReplicas asks a partner's replicas in turn (*replicaOrder): the
// card's order, those that answered "unavailable" lately last, again after
// a wait while every one of them answers "unavailable".
type matchReplicas interface {
	ask(ctx context.Context, c *card.Card, passes int, try func(exchange.PeerID) error) error
}

// querierConfig is what a querier is built from.
type querierConfig struct {
	Audit   *raftGroup // match_out, match_result and denial entries; query records
	Policy  livePolicy
	Pins    pinnedCards
	Sets    partnerSetSource
	Client  matchClient
	Opener  exchange.Opener // the host the client opens streams on
	Order   matchReplicas   // which replica of a partner to ask first
	Hits    hitKeeper       // keeps the tags of hits for a follow-up (followup_out_hits.go); nil: none kept
	Metrics *matchMetrics
	Now     func() time.Time
	Log     *slog.Logger
}

// querier runs this node's match queries against its partners and keeps
// the records of queries that wait for, or got, an approver (records of
// the audit group). It holds no state of its own; a query's goroutines
// end before Query returns.
type querier struct {
	cfg querierConfig
}

// newQuerier returns the querier of cfg.
func newQuerier(cfg querierConfig) *querier { return &querier{cfg: cfg} }

// queryPlan is what a query decided before any partner is asked.
type queryPlan struct {
	id       string
	user     httpapi.User
	req      httpapi.QueryRequest
	kind     ident.Kind
	inputs   [][]byte // ident.Input of each value, in the caller's order
	distinct int
	padded   int
	approver string
	mode     string // enforcement or safeguarding
	caseKey  [32]byte
	commit   ledger.Digest // HMAC-SHA256 of the query set under caseKey
}

// Query runs a match query of user u against the partners it names (all
// partners the policy in force allows for the kind when it names none).
// Each partner is asked in parallel, with its own deadline: the node checks
// its own policy, commits a match_out entry under the request ID it then
// sends, syncs the partner's set when stale, blinds, asks, verifies,
// finalises and looks the outputs up, and commits a match_result entry
// (hit count, commitment to the query set). A query the policy wants
// approved is recorded as pending and answered with status "pending"
// until an approver signs it off; the same user then runs it again with
// its ID. No quorum on this node's ledger refuses the whole query
// (httpapi.ErrUnavailable); one partner's failure is reported in its part.
func (q *querier) Query(ctx context.Context, u httpapi.User, req httpapi.QueryRequest) (httpapi.QueryResult, error) {
	p, err := q.planQuery(u, req)
	if err != nil {
		return httpapi.QueryResult{}, err
	}
	if err := q.cfg.Audit.Quorum(); err != nil {
		return httpapi.QueryResult{}, fmt.Errorf("query: the audit ledger has no quorum (%v), so nothing can be recorded or sent: %w", err, httpapi.ErrUnavailable)
	}
	start := time.Now()
	if q.cfg.Audit.Status().Policy != q.cfg.Policy.Policy().Version() {
		q.cfg.Policy.refreshPolicy()
	}
	pol := q.cfg.Policy.Policy()
	partners, err := q.queryPartners(pol, req)
	if err != nil {
		return httpapi.QueryResult{}, err
	}
	var rec *httpapi.QueryRecord
	if req.ID != "" {
		if rec, err = q.approvedRecord(ctx, u, req, partners, p); err != nil {
			return httpapi.QueryResult{}, err
		}
		p.id, p.approver = rec.ID, rec.Approver
	}
	decisions := make([]policy.Decision, len(partners))
	needs := false
	for i, partner := range partners {
		decisions[i] = pol.Decide(policy.Request{
			Principal: policy.Principal{User: u.Name, Role: u.Role}, Action: "match", Kind: req.Kind, Partner: partner,
			Context: policy.Context{Purpose: req.Purpose, LegalBasis: req.Basis, Offence: req.Offence, CaseRef: req.Case,
				PaddedSize: p.padded, Urgent: req.Urgent, Mode: p.mode, Reaches: req.Reaches},
			Time: q.cfg.Now().UTC(), Approved: rec != nil,
		})
		needs = needs || decisions[i].NeedsApproval && rec == nil
	}
	q.cfg.Metrics.stage("out", "policy", start)
	res := httpapi.QueryResult{ID: p.id, Kind: req.Kind, Values: p.distinct, PaddedSize: p.padded, Mode: p.mode}
	if rec == nil {
		if _, err := rand.Read(p.caseKey[:]); err != nil {
			return httpapi.QueryResult{}, fmt.Errorf("query: draw case key: %w", err)
		}
		p.commit = querySetCommitment(p.caseKey, p.inputs)
	}
	res.CaseKey = hex.EncodeToString(p.caseKey[:])
	if needs {
		r, err := q.recordPending(ctx, u, req, partners, p)
		if err != nil {
			return httpapi.QueryResult{}, err
		}
		q.cfg.Log.Info("query waits for an approver", "query", r.ID, "partners", len(partners))
		res.ID, res.Status = r.ID, "pending"
		return res, nil
	}
	if rec != nil {
		if err := q.spendApproval(ctx, u, rec); err != nil {
			return httpapi.QueryResult{}, err
		}
	}
	res.Status = "done"
	res.Partners = make([]httpapi.PartnerResult, len(partners))
	prog := progressOf(ctx) // the console's progress page (query_progress.go)
	prog.asking(p.id, partners)
	var wg sync.WaitGroup
	for i, partner := range partners {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, DefaultPartnerTimeout)
			defer cancel()
			t0 := time.Now()
			r := q.queryPartner(pctx, p, partner, decisions[i])
			r.Millis = time.Since(t0).Milliseconds()
			res.Partners[i] = r
			prog.answered(r)
		})
	}
	wg.Wait()
	return res, nil
}

// planQuery checks the request and frames the values.
func (q *querier) planQuery(u httpapi.User, req httpapi.QueryRequest) (*queryPlan, error) {
	k, err := ident.ParseKind(req.Kind)
	if err != nil {
		return nil, fmt.Errorf("query: %v: %w", err, httpapi.ErrBadRequest)
	}
	if len(req.Values) == 0 {
		return nil, fmt.Errorf("query: no values: %w", httpapi.ErrBadRequest)
	}
	p := &queryPlan{user: u, req: req, kind: k, inputs: make([][]byte, len(req.Values)), mode: req.Mode}
	switch p.mode {
	case "":
		p.mode = modeEnforcement
	case modeEnforcement, modeSafeguarding:
	default:
		return nil, fmt.Errorf("query: mode %q: give enforcement or safeguarding: %w", req.Mode, httpapi.ErrBadRequest)
	}
	seen := make(map[string]bool, len(req.Values))
	for i, v := range req.Values {
		in := ident.Input(k, v)
		if in == nil {
			// The value is not echoed: it may be an identifier.
			return nil, fmt.Errorf("query: value %d is not a canonical %s (run xborder canon): %w", i+1, k, httpapi.ErrBadRequest)
		}
		p.inputs[i] = in
		seen[v] = true
	}
	p.distinct = len(seen)
	p.padded = psi.Bucket(p.distinct)
	if p.padded > exchange.DefaultMaxBatch {
		return nil, fmt.Errorf("query: %d distinct values pad to %d, over the %d a partner evaluates; split the file: %w",
			p.distinct, p.padded, exchange.DefaultMaxBatch, httpapi.ErrBadRequest)
	}
	if p.id, err = newQueryID(); err != nil {
		return nil, err
	}
	return p, nil
}

// queryPartners returns the partners to ask, sorted: those named, each of
// which must be pinned, or every pinned partner the policy lets this node
// exchange the kind with.
func (q *querier) queryPartners(pol *policy.Set, req httpapi.QueryRequest) ([]string, error) {
	pins := q.cfg.Pins.Pins()
	var out []string
	if len(req.Partners) == 0 {
		for _, p := range pol.Partners() {
			if _, ok := pins[p]; ok && slices.Contains(pol.PartnerKinds(p), req.Kind) {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("query: no pinned partner exchanges %s under the policy in force: %w", req.Kind, httpapi.ErrBadRequest)
		}
		return out, nil
	}
	for _, p := range req.Partners {
		if _, ok := pins[p]; !ok {
			return nil, fmt.Errorf("query: %s is not a pinned partner (xborder partner list): %w", p, httpapi.ErrBadRequest)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// querySetCommitment is HMAC-SHA256 under key of the query set: the
// distinct framed inputs, sorted, each prefixed by its length.
func querySetCommitment(key [32]byte, inputs [][]byte) ledger.Digest {
	s := make([]string, 0, len(inputs))
	for _, in := range inputs {
		s = append(s, string(in))
	}
	sort.Strings(s)
	s = slices.Compact(s)
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("xborder/v1/query-set"))
	for _, in := range s {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(in)))
		m.Write(l[:])
		m.Write([]byte(in))
	}
	var d ledger.Digest
	m.Sum(d[:0])
	return d
}

// matchAnyReplica asks the partner's replicas until one answers, in the
// order of its card except that those that answered "unavailable" lately
// go last; a denial or an answer that does not verify ends the search.
func (q *querier) matchAnyReplica(ctx context.Context, partner string, xq exchange.Query) (*exchange.Answer, error) {
	c, ok := q.cfg.Pins.Pins()[partner]
	if !ok {
		return nil, fmt.Errorf("match %s: %w", partner, ErrNotPinned)
	}
	// One time for every replica asked: the request stays byte-identical,
	// so a replica that admitted it before failing to answer has spent the
	// budget once and the next replica answers the same command.
	if xq.Time.IsZero() {
		xq.Time = q.cfg.Now()
	}
	var ans *exchange.Answer
	err := q.cfg.Order.ask(ctx, c, replicaPasses, func(peer exchange.PeerID) error {
		a, err := q.cfg.Client.Match(ctx, q.cfg.Opener, peer, xq)
		ans = a
		return err
	})
	if err != nil {
		return nil, err
	}
	return ans, nil
}

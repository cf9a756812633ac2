package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
	"github.com/xborder/xborder/psi"
)

// reachCopy is this node's copy of a partner's set of one reach, as a
// query uses it.
type reachCopy struct {
	set   *psi.Set
	key   *psi.PublicKey
	fresh bool
}

// queryPartner runs one partner's part of a query and records it. It
// never returns hits whose result entry is not committed. It asks the
// reaches the decision gives (the mode's), blinding once.
func (q *querier) queryPartner(ctx context.Context, p *queryPlan, partner string, d policy.Decision) httpapi.PartnerResult {
	var rid [16]byte
	_, _ = rand.Read(rid[:])
	r := q.newPartnerResult(p, partner, rid, d)
	kind := p.req.Kind
	entry := q.outboundEntry(p, partner, r.RequestID, d)
	fail := func(outcome, reason string) httpapi.PartnerResult {
		r.Outcome, r.Reason, r.Hits, r.HitReaches, r.HitCount = outcome, reason, nil, nil, 0
		q.cfg.Metrics.query("out", partner, kind, outcome)
		if outcome == httpapi.OutcomeDenied {
			q.cfg.Metrics.denial("out", reason)
		}
		q.cfg.Log.Info("query part ended", "query", p.id, "partner", partner, "outcome", outcome, "reason", reason)
		return r
	}
	if !d.Allow {
		entry.Type, entry.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
		rc, err := q.cfg.Audit.Append(ctx, entry)
		if err != nil {
			return fail(httpapi.OutcomeUnavailable, "no quorum on this node's ledger: "+err.Error())
		}
		r.OutboundIndex = &rc.Index
		return fail(httpapi.OutcomeDenied, d.Reasons[0].ID)
	}
	for attempt := 0; ; attempt++ {
		t := time.Now()
		copies, epoch, err := q.reachCopies(ctx, partner, kind, d.Reaches)
		q.cfg.Metrics.stage("out", "sync", t)
		if err != nil {
			var refused *exchange.DeniedError
			if errors.As(err, &refused) {
				// The partner refuses to sync this kind (or a reach of it)
				// to this agency (its policy does not let it ask): a
				// denial, recorded as one; nothing was asked.
				entry.Type, entry.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
				rc, cerr := q.cfg.Audit.Append(ctx, entry)
				if cerr != nil {
					return fail(httpapi.OutcomeUnavailable, "no quorum on this node's ledger: "+cerr.Error())
				}
				r.OutboundIndex = &rc.Index
				return fail(httpapi.OutcomeDenied, string(refused.Reason))
			}
			return fail(httpapi.OutcomeUnavailable, "no copy of the partner's set: "+err.Error())
		}
		out, retry := q.askPartner(ctx, p, partner, d, copies, epoch, &r, entry)
		if retry && attempt == 0 {
			// The partner's epoch changed under us: sync and ask again
			// under a new request ID.
			for _, reach := range d.Reaches {
				q.cfg.Sets.expireCopy(partner, kind, reach)
			}
			_, _ = rand.Read(rid[:])
			r = q.newPartnerResult(p, partner, rid, d)
			entry = q.outboundEntry(p, partner, r.RequestID, d)
			continue
		}
		q.cfg.Metrics.query("out", partner, kind, publicOutcome(out.Outcome))
		if out.Outcome == httpapi.OutcomeDenied {
			q.cfg.Metrics.denial("out", out.Reason)
		}
		q.cfg.Log.Info("query part ended", "query", p.id, "partner", partner, "outcome", publicOutcome(out.Outcome))
		return out
	}
}

// newPartnerResult starts the result of one partner's part: the reaches
// asked and, for a safeguarding query, the handling code and instruction
// of the agreement with the partner.
func (q *querier) newPartnerResult(p *queryPlan, partner string, rid [16]byte, d policy.Decision) httpapi.PartnerResult {
	r := httpapi.PartnerResult{Agency: partner, RequestID: hex.EncodeToString(rid[:]), Reaches: d.Reaches}
	if p.mode == modeSafeguarding {
		r.Handling, r.Instruction = d.Handling, d.Instruction
	}
	return r
}

// reachCopies returns the copies of partner's sets of kind for each reach,
// all of one epoch (the newest its card lists): a copy of an older epoch
// than another's is synced again once.
func (q *querier) reachCopies(ctx context.Context, partner, kind string, reaches []string) (map[string]reachCopy, uint64, error) {
	for attempt := 0; ; attempt++ {
		out := make(map[string]reachCopy, len(reaches))
		var epochs []uint64
		for _, reach := range reaches {
			set, key, epoch, fresh, err := q.cfg.Sets.partnerSet(ctx, partner, kind, reach)
			if set == nil || key == nil {
				if err == nil {
					err = errors.New("no set")
				}
				return nil, 0, fmt.Errorf("%s set: %w", reach, err)
			}
			out[reach] = reachCopy{set: set, key: key, fresh: fresh}
			epochs = append(epochs, epoch)
		}
		newest := slices.Max(epochs)
		if slices.Min(epochs) == newest {
			return out, newest, nil
		}
		if attempt > 0 {
			return nil, 0, fmt.Errorf("the partner's sets of %s are of epochs %v: not one epoch", kind, epochs)
		}
		for i, reach := range reaches {
			if epochs[i] != newest {
				q.cfg.Sets.expireCopy(partner, kind, reach)
			}
		}
	}
}

// outboundEntry is the match_out entry of one partner's part: the header
// names the partner, kind, padded size, policy version, mode and reaches
// asked; the body the investigator, the approver and the case.
func (q *querier) outboundEntry(p *queryPlan, partner, rid string, d policy.Decision) ledger.Entry {
	urg := uint8(0)
	if p.req.Urgent {
		urg = 1
	}
	approver := ""
	if p.approver != "" {
		approver = "user:" + p.approver
	}
	return ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeMatchOut, Outcome: ledger.OutcomeOK, RequestID: rid, Partner: partner,
			Kind: p.req.Kind, PaddedSize: uint64(p.padded), PolicyVersion: d.Version, Handling: d.Handling, Urgency: urg,
			Mode: p.mode, Reaches: strings.Join(d.Reaches, ",")},
		Body: ledger.Body{Actor: actorName(p.user), Approver: approver, Purpose: p.req.Purpose,
			LegalBasis: p.req.Basis, Offence: p.req.Offence, CaseRef: p.req.Case},
	}
}

// askPartner commits the outbound entry, blinds once, asks the partner's
// replicas in turn for an evaluation under each reach's key, verifies and
// looks each up in the copy of that reach's set, and commits the result
// entry. retry reports a partner that no longer serves the epoch of our
// copy.
func (q *querier) askPartner(ctx context.Context, p *queryPlan, partner string, d policy.Decision, copies map[string]reachCopy,
	epoch uint64, r *httpapi.PartnerResult, entry ledger.Entry) (httpapi.PartnerResult, bool) {
	kind := p.req.Kind
	entry.Epoch = epoch
	res := make([]ledger.Reservation, 0, len(d.Reserve))
	for _, x := range d.Reserve {
		res = append(res, ledger.Reservation{Key: x.Key, Amount: uint64(x.Amount), Limit: uint64(x.Limit)})
	}
	r.Epoch = epoch
	// No audit, no answer: the outbound entry is committed before a byte
	// goes to the partner.
	t := time.Now()
	rc, err := q.cfg.Audit.Admit(ctx, ledger.Admission{Entry: entry, PolicyVersion: d.Version, Reserve: res})
	q.cfg.Metrics.stage("out", "ledger", t)
	if rc.Appended {
		r.OutboundIndex = &rc.Index
	}
	switch {
	case errors.Is(err, ledger.ErrBudget):
		r.Outcome, r.Reason = httpapi.OutcomeDenied, policy.ReasonCaseBudget
		return *r, false
	case err != nil:
		r.Outcome, r.Reason = httpapi.OutcomeUnavailable, "this node's ledger did not record the query: "+err.Error()
		return *r, false
	}
	t = time.Now()
	// One querier for every reach: the keys are given per evaluation.
	pq, err := psi.NewQuerier(psi.QuerierConfig{Kind: kind, Epoch: epoch, Dummy: ident.DummyInput})
	if err != nil {
		r.Outcome, r.Reason = httpapi.OutcomeFailed, err.Error()
		return q.recordResult(ctx, p, r, entry, ledger.OutcomeFailed, 0), false
	}
	query, evreq, err := pq.Blind(p.inputs, rand.Reader)
	q.cfg.Metrics.stage("out", "crypto", t)
	if err != nil {
		r.Outcome, r.Reason = httpapi.OutcomeFailed, err.Error()
		return q.recordResult(ctx, p, r, entry, ledger.OutcomeFailed, 0), false
	}
	keys := make(map[string]*psi.PublicKey, len(copies))
	for reach, c := range copies {
		keys[reach] = c.key
	}
	var rid [16]byte
	hex.Decode(rid[:], []byte(r.RequestID))
	xq := exchange.Query{ID: rid, Responder: partner, Kind: kind, Epoch: epoch, Mode: p.mode, Reaches: d.Reaches, Keys: keys,
		CaseRef: p.req.Case, LegalBasis: p.req.Basis, Offence: p.req.Offence, Purpose: p.req.Purpose, Urgent: p.req.Urgent, Eval: evreq}
	t = time.Now()
	ans, err := q.matchAnyReplica(ctx, partner, xq)
	q.cfg.Metrics.stage("out", "network", t)
	var denied *exchange.DeniedError
	switch {
	case errors.As(err, &denied):
		r.Outcome, r.Reason = httpapi.OutcomeDenied, string(denied.Reason)
		out := ledger.OutcomeDenied
		switch denied.Reason {
		case exchange.ReasonPartnerBudget, exchange.ReasonKindCap, exchange.ReasonKeyExhausted:
			out = ledger.OutcomeDeniedBudget
		case exchange.ReasonReplay:
			out = ledger.OutcomeDeniedReplay
		}
		res := q.recordResult(ctx, p, r, entry, out, 0)
		return res, denied.Reason == exchange.ReasonUnknownEpoch
	case errors.Is(err, exchange.ErrVerify):
		r.Outcome, r.Reason = httpapi.OutcomeFailed, err.Error()
		return q.recordResult(ctx, p, r, entry, ledger.OutcomeFailed, 0), false
	case err != nil:
		r.Outcome, r.Reason = httpapi.OutcomeUnavailable, err.Error()
		return q.recordResult(ctx, p, r, entry, ledger.OutcomeFailed, 0), false
	}
	// Each reach's evaluation is looked up in the copy of that reach's set.
	var hits []reachHit
	var version uint32
	stale := ""
	for _, res := range ans.Results {
		c := copies[res.Reach]
		if res.Reach == reachOpen || version == 0 {
			version = res.SetVersion
		}
		t = time.Now()
		// HitTags is MatchKey that also derives the follow-up tag of each
		// hit (and of nothing else): kept below for step 2.
		rh, err := query.HitTags(partner, c.key, res.Evaluation, c.set)
		q.cfg.Metrics.stage("out", "crypto", t)
		if err == nil && res.SetVersion > c.set.Version() {
			// The partner added to its set since our copy: catch up and look
			// the same outputs up again (no new question to the partner).
			q.cfg.Sets.expireCopy(partner, kind, res.Reach)
			t = time.Now()
			s2, k2, e2, fresh2, err2 := q.cfg.Sets.partnerSet(ctx, partner, kind, res.Reach)
			q.cfg.Metrics.stage("out", "sync", t)
			if err2 == nil && s2 != nil && e2 == epoch && k2 != nil && k2.Equal(c.key) {
				if h2, err3 := query.HitTags(partner, k2, res.Evaluation, s2); err3 == nil {
					c.set, rh, c.fresh = s2, h2, fresh2
				}
			}
		}
		switch {
		case errors.Is(err, psi.ErrSetMismatch):
			r.Outcome, r.Reason = httpapi.OutcomeStale, "our copy of the partner's "+res.Reach+" set is of another key"
			return q.recordResult(ctx, p, r, entry, ledger.OutcomeStale, version), false
		case err != nil:
			r.Outcome, r.Reason = httpapi.OutcomeFailed, err.Error()
			return q.recordResult(ctx, p, r, entry, ledger.OutcomeFailed, version), false
		}
		for _, h := range rh {
			hits = append(hits, reachHit{h.Index, res.Reach, h.Tag})
		}
		if (!c.fresh || res.SetVersion > c.set.Version()) && stale == "" {
			stale = fmt.Sprintf("our copy of the %s set is at version %d, the partner answered at %d", res.Reach, c.set.Version(), res.SetVersion)
		}
	}
	r.Hits, r.HitReaches = sortHits(hits)
	r.SetVersion = version
	out := ledger.OutcomeOK
	switch {
	case stale != "":
		// A hit is a hit; a miss is unknown until the copy catches up.
		r.Outcome, r.Reason, out = httpapi.OutcomeStale, stale, ledger.OutcomeStale
	case len(hits) > 0:
		r.Outcome = httpapi.OutcomeHits
	default:
		r.Outcome = httpapi.OutcomeNoHits
	}
	done := q.recordResult(ctx, p, r, entry, out, version)
	if done.ResultIndex != nil && len(done.Hits) > 0 {
		q.keepHits(ctx, p, &done, epoch, hits)
	}
	return done, false
}

// reachHit is one value that hit, the reach whose key and set it hit
// under, and its follow-up tag (psi.Query.HitTags). A value can hit in
// several reaches.
type reachHit struct {
	index int
	reach string
	tag   psi.Tag
}

// sortHits orders hits by value, then by reach, and returns the indexes
// and the reach of each.
func sortHits(hits []reachHit) ([]int, []string) {
	if len(hits) == 0 {
		return nil, nil
	}
	sort.Slice(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		return a.index < b.index || a.index == b.index && reachOrder(a.reach) < reachOrder(b.reach)
	})
	idx, reaches := make([]int, len(hits)), make([]string, len(hits))
	for i, h := range hits {
		idx[i], reaches[i] = h.index, h.reach
	}
	return idx, reaches
}

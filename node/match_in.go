package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
	"github.com/xborder/xborder/psi"
)

// responderSource gives the evaluator of a kind and epoch: the precomputed
// keys and sets of the holdings.
type responderSource interface {
	responder(kind string, epoch uint64, reach string) (r *psi.Responder, version uint64, ok bool)
	// unserved says why there is no responder: exchange.ErrNoSet, or an
	// error for "this replica cannot serve it now" (ask another).
	unserved(kind string, epoch uint64) error
}

// admission is the responder's side of a match (exchange.Admitter and
// exchange.Responders). Policy decides first (Permit, before the exchange
// looks up the set; then again in Admit); then one ledger Admit
// command of the audit group checks the replay window and the policy
// version, reserves the budgets and appends the match_in entry,
// atomically; exchange evaluates only after Admit returns nil, with the
// evaluator Responder gives, timed into the match metrics. Every write is
// FailFast: a replica that knows it has no quorum answers "unavailable"
// at once, and a denial it cannot record is not sent (no audit, no
// answer). It holds no state and starts no goroutine.
type admission struct {
	audit      *raftGroup
	policy     livePolicy
	responders responderSource
	now        func() time.Time
	log        *slog.Logger
	mm         *matchMetrics
}

var (
	_ exchange.Admitter   = (*admission)(nil)
	_ exchange.Responders = (*admission)(nil)
)

// newAdmission returns the admission of inbound matches.
func newAdmission(audit *raftGroup, pol livePolicy, responders responderSource, mm *matchMetrics,
	now func() time.Time, log *slog.Logger) *admission {
	return &admission{audit: audit, policy: pol, responders: responders, now: now, log: log, mm: mm}
}

// decide decides an inbound match request by the policy in force (action
// match, principal the partner agency), with the version the ledger has in
// force, so that Admit does not refuse the decision as stale.
func (a *admission) decide(in *exchange.Inbound) policy.Decision {
	start := time.Now()
	if a.audit.Status().Policy != a.policy.Policy().Version() {
		a.policy.refreshPolicy()
	}
	d := a.policy.Policy().Decide(policy.Request{
		Principal: policy.Principal{Agency: in.Querier},
		Action:    "match",
		Kind:      in.Kind,
		Context: policy.Context{Purpose: in.Purpose, LegalBasis: in.LegalBasis, Offence: in.Offence,
			CaseRef: in.CaseRef, PaddedSize: in.PaddedSize, Urgent: in.Urgent, Mode: in.Mode, Reaches: in.Reaches},
		Time:  a.now().UTC(),
		Epoch: in.Epoch,
	})
	a.mm.stage("in", "policy", start)
	return d
}

// Permit decides an inbound match request by the policy alone, before the
// exchange looks up any set (exchange.Admitter): a denial is appended as a
// denial entry and returned as a partner-visible reason; nothing is
// reserved or admitted. A request for a reach its mode may not ask of this
// partner and kind (a victim or witness reach in enforcement mode, however
// the querier built it) is refused here with reach_not_allowed, before
// any key evaluates anything.
func (a *admission) Permit(ctx context.Context, in *exchange.Inbound) error {
	d := a.decide(in)
	if !d.Allow {
		return a.deny(ctx, in, d)
	}
	return nil
}

// deny records the policy denial d of in and returns its partner-visible
// reason.
func (a *admission) deny(ctx context.Context, in *exchange.Inbound, d policy.Decision) error {
	partner, kind := in.Peer.Agency, metricKind(in.Kind)
	e := inboundEntry(in, d.Version, d.Handling)
	r := partnerReason(d.Reasons)
	e.Type, e.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
	start := time.Now()
	_, err := a.audit.Append(ledger.FailFast(ctx), e)
	a.mm.stage("in", "ledger", start)
	if err != nil {
		a.mm.query("in", partner, kind, "unavailable")
		return fmt.Errorf("record denial: %w: %w", exchange.ErrUnavailable, err)
	}
	a.mm.query("in", partner, kind, "denied")
	a.mm.denial("in", string(r))
	return exchange.Deny(r)
}

// Admit decides an inbound match request by the policy in force again (it
// may have changed since Permit) and commits its admission. A policy
// denial is appended as a denial entry and returned as a partner-visible
// reason; no quorum returns exchange.ErrUnavailable and evaluates nothing.
func (a *admission) Admit(ctx context.Context, in *exchange.Inbound) error {
	partner, kind := in.Peer.Agency, metricKind(in.Kind)
	d := a.decide(in)
	if !d.Allow {
		return a.deny(ctx, in, d)
	}
	e := inboundEntry(in, d.Version, d.Handling)
	res := make([]ledger.Reservation, 0, len(d.Reserve))
	for _, r := range d.Reserve {
		res = append(res, ledger.Reservation{Key: r.Key, Amount: uint64(r.Amount), Limit: uint64(r.Limit)})
	}
	e.Type, e.Outcome = ledger.TypeMatchIn, ledger.OutcomeOK
	start := time.Now()
	// The command ID is the signed request's digest (and the policy version
	// it was decided on): the same signed bytes sent again, as a querier does
	// when the replica it asked went down before answering, are a retry of
	// one command and get its first outcome, with the budget reserved once;
	// the same request ID under another signature is a replay (ErrReplay).
	actx := ledger.WithCommandID(ledger.FailFast(ctx), admitCommandID(in, d.Version))
	_, err := a.audit.Admit(actx, ledger.Admission{Entry: e, PolicyVersion: d.Version, Reserve: res})
	a.mm.stage("in", "ledger", start)
	var r exchange.Reason
	switch {
	case err == nil:
		a.mm.query("in", partner, kind, "admitted")
		return nil
	case errors.Is(err, ledger.ErrReplay):
		r = exchange.ReasonReplay
	case errors.Is(err, ledger.ErrBudget):
		r = a.budgetReason(d.Reserve)
	default:
		// ErrNoQuorum, ErrStalePolicy (the version changed between the
		// decision and the commit: the request ID is spent, the partner
		// asks again with a new one), a halted or closed ledger.
		a.mm.query("in", partner, kind, "unavailable")
		return fmt.Errorf("admit: %w: %w", exchange.ErrUnavailable, err)
	}
	a.mm.query("in", partner, kind, "denied")
	a.mm.denial("in", string(r))
	return exchange.Deny(r)
}

// Refused records a request the exchange server refused before Admit. For
// a bad signature or a wrong peer nothing of the request is trusted: the
// entry names only the pinned agency of the stream. An error (wrapping
// exchange.ErrUnavailable) means nothing was recorded, and the server
// answers "unavailable" rather than the denial.
func (a *admission) Refused(ctx context.Context, in *exchange.Inbound, r exchange.Reason) error {
	var e ledger.Entry
	if r == exchange.ReasonBadSignature || r == exchange.ReasonWrongPeer {
		e = ledger.Entry{Header: ledger.Header{Partner: in.Peer.Agency}}
	} else {
		e = inboundEntry(in, a.policy.Policy().Version(), "")
		e.Body = ledger.Body{}
		if _, err := ident.ParseKind(e.Kind); err != nil {
			e.Kind = ""
		}
	}
	e.Type, e.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
	e.Count = 0
	start := time.Now()
	_, err := a.audit.Append(ledger.FailFast(ctx), e)
	a.mm.stage("in", "ledger", start)
	if err != nil {
		a.mm.query("in", in.Peer.Agency, metricKind(in.Kind), "unavailable")
		return fmt.Errorf("record refused match request: %w: %w", exchange.ErrUnavailable, err)
	}
	a.mm.query("in", in.Peer.Agency, metricKind(in.Kind), "refused")
	a.mm.denial("in", string(r))
	return nil
}

// inboundEntry is the ledger entry of an inbound match request: partner,
// kind, epoch, padded size, request ID and the digest of its signature in
// the header; the partner's case reference, legal basis, offence and
// purpose in the prunable body.
func inboundEntry(in *exchange.Inbound, version, handling string) ledger.Entry {
	urg := uint8(0)
	if in.Urgent {
		urg = 1
	}
	return ledger.Entry{
		Header: ledger.Header{
			RequestID: hex.EncodeToString(in.ID[:]), Partner: in.Peer.Agency, Kind: in.Kind, Epoch: in.Epoch,
			PaddedSize: uint64(in.PaddedSize), PolicyVersion: version, Handling: handling, Urgency: urg,
			RequestSigDigest: in.SignatureSHA256, Mode: in.Mode, Reaches: strings.Join(in.Reaches, ","),
		},
		Body: ledger.Body{Actor: "agency:" + in.Peer.Agency, Purpose: in.Purpose, LegalBasis: in.LegalBasis,
			Offence: in.Offence, CaseRef: in.CaseRef},
	}
}

// partnerReason maps the reasons of a policy denial to the closed list a
// partner may see: reach_not_allowed when it is one of them (the refusal
// the non-punishment principle asks for is named as such), else the first;
// a forbid's own @reason, the case budget and the safeguarding budget
// become not_permitted and partner_budget.
func partnerReason(rs []policy.Reason) exchange.Reason {
	for _, r := range rs {
		if r.ID == policy.ReasonReachNotAllowed {
			return exchange.ReasonReachNotAllowed
		}
	}
	id := rs[0].ID
	if id == policy.ReasonSafeguardBudget {
		return exchange.ReasonPartnerBudget
	}
	if r := exchange.Reason(id); r.Valid() {
		return r
	}
	return exchange.ReasonNotPermitted
}

// budgetReason says which budget denied an admission: the first of res
// that the request would pass, by the used amounts the ledger holds (a few
// reads, whatever the size of the ledger: a partner over its budget costs
// the responder no more than any denial). Admit says only ErrBudget.
func (a *admission) budgetReason(res []policy.Reservation) exchange.Reason {
	for _, r := range res {
		used, err := a.audit.BudgetUsed(r.Key)
		if err != nil {
			return exchange.ReasonPartnerBudget
		}
		if used+uint64(max(r.Amount, 0)) > uint64(max(r.Limit, 0)) {
			switch r.Key[:strings.IndexByte(r.Key+"/", '/')] {
			case "kind":
				return exchange.ReasonKindCap
			case "key":
				return exchange.ReasonKeyExhausted
			case "safeguarding":
				return exchange.ReasonPartnerBudget
			case "case":
				return exchange.ReasonNotPermitted
			}
			return exchange.ReasonPartnerBudget
		}
	}
	return exchange.ReasonPartnerBudget
}

// metricKind is kind when it is one of the identifier kinds, else "other",
// so that a hostile request cannot grow the metrics' label sets.
func metricKind(kind string) string {
	k, err := ident.ParseKind(kind)
	if err != nil || k.String() != kind {
		return "other"
	}
	return kind
}

// admitCommandID names the ledger command that admits the signed request in:
// byte-identical requests share it, whichever replica they reach.
func admitCommandID(in *exchange.Inbound, policyVersion string) string {
	return "match_in/" + in.Querier + "/" + hex.EncodeToString(in.SignatureSHA256[:]) + "/" + policyVersion
}

// Responder returns the evaluator of (kind, epoch, reach), timed for the
// crypto stage metric, or exchange.ErrNoSet (exchange.Responders). The
// exchange asks it only for the reaches Admit admitted.
func (a *admission) Responder(kind string, epoch uint64, reach string) (exchange.Evaluator, uint32, error) {
	ev, version, ok := a.responders.responder(kind, epoch, reach)
	if !ok || ev == nil {
		return nil, 0, fmt.Errorf("responder of %s epoch %d reach %s: %w", kind, epoch, reach, a.responders.unserved(kind, epoch))
	}
	if version > 1<<32-1 {
		return nil, 0, fmt.Errorf("responder of %s epoch %d reach %s: set version %d out of range", kind, epoch, reach, version)
	}
	return timedEvaluator{ev: ev, m: a.mm}, uint32(version), nil
}

// timedEvaluator records the time of each evaluation as the inbound crypto
// stage.
type timedEvaluator struct {
	ev exchange.Evaluator
	m  *matchMetrics
}

func (t timedEvaluator) Evaluate(req *psi.EvalRequest, rnd io.Reader) (*psi.Evaluation, error) {
	start := time.Now()
	ev, err := t.ev.Evaluate(req, rnd)
	t.m.stage("in", "crypto", start)
	return ev, err
}

package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// admitter adapts the node to exchange.Admitter: the responder's side of a
// match. Policy decides first; then one ledger Admit command checks the
// replay window and the policy version, reserves the budgets and appends
// the match_in entry, atomically; exchange evaluates only after it returns
// nil.
type admitter Node

// Admit decides an inbound match request by the policy in force (action
// match, principal the partner agency) and commits its admission. A policy
// denial is appended as a denial entry and returned as a partner-visible
// reason; no quorum returns exchange.ErrUnavailable and evaluates nothing.
func (a *admitter) Admit(ctx context.Context, in *exchange.Inbound) error {
	n := (*Node)(a)
	partner, kind := in.Peer.Agency, metricKind(in.Kind)
	start := time.Now()
	// Decide with the version the ledger has in force, so that Admit
	// does not refuse the decision as stale.
	if n.aud.Status().Policy != n.Policy().Version() {
		n.refreshPolicy()
	}
	pol := n.Policy()
	d := pol.Decide(policy.Request{
		Principal: policy.Principal{Agency: in.Querier},
		Action:    "match",
		Kind:      in.Kind,
		Context: policy.Context{Purpose: in.Purpose, LegalBasis: in.LegalBasis, Offence: in.Offence,
			CaseRef: in.CaseRef, PaddedSize: in.PaddedSize, Urgent: in.Urgent},
		Time:  n.now().UTC(),
		Epoch: in.Epoch,
	})
	n.mm.stage("in", "policy", start)
	e := inboundEntry(in, d.Version, d.Handling)
	if !d.Allow {
		r := partnerReason(d.Reasons[0].ID)
		e.Type, e.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
		start = time.Now()
		_, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) { return n.aud.Append(ctx, e) })
		n.mm.stage("in", "ledger", start)
		if err != nil {
			n.mm.query("in", partner, kind, "unavailable")
			return fmt.Errorf("record denial: %w: %w", exchange.ErrUnavailable, err)
		}
		n.mm.query("in", partner, kind, "denied")
		n.mm.denial("in", string(r))
		return exchange.Deny(r)
	}
	res := make([]ledger.Reservation, 0, len(d.Reserve))
	for _, r := range d.Reserve {
		res = append(res, ledger.Reservation{Key: r.Key, Amount: uint64(r.Amount), Limit: uint64(r.Limit)})
	}
	e.Type, e.Outcome = ledger.TypeMatchIn, ledger.OutcomeOK
	start = time.Now()
	// The command ID is the signed request's digest (and the policy version
	// it was decided on): the same signed bytes sent again, as a querier does
	// when the replica it asked went down before answering, are a retry of
	// one command and get its first outcome, with the budget reserved once;
	// the same request ID under another signature is a replay (ErrReplay).
	actx := ledger.WithCommandID(ctx, admitCommandID(in, d.Version))
	_, err := n.commit(GroupAudit, "admit", func() (ledger.Receipt, error) {
		return n.aud.Admit(actx, ledger.Admission{Entry: e, PolicyVersion: d.Version, Reserve: res})
	})
	n.mm.stage("in", "ledger", start)
	var r exchange.Reason
	switch {
	case err == nil:
		n.mm.query("in", partner, kind, "admitted")
		return nil
	case errors.Is(err, ledger.ErrReplay):
		r = exchange.ReasonReplay
	case errors.Is(err, ledger.ErrBudget):
		r = n.budgetReason(d.Reserve, in)
	default:
		// ErrNoQuorum, ErrStalePolicy (the version changed between the
		// decision and the commit: the request ID is spent, the partner
		// asks again with a new one), a halted or closed ledger.
		n.mm.query("in", partner, kind, "unavailable")
		return fmt.Errorf("admit: %w: %w", exchange.ErrUnavailable, err)
	}
	n.mm.query("in", partner, kind, "denied")
	n.mm.denial("in", string(r))
	return exchange.Deny(r)
}

// Refused records a request the exchange server refused before Admit. For
// a bad signature or a wrong peer nothing of the request is trusted: the
// entry names only the pinned agency of the stream.
func (a *admitter) Refused(ctx context.Context, in *exchange.Inbound, r exchange.Reason) {
	n := (*Node)(a)
	var e ledger.Entry
	if r == exchange.ReasonBadSignature || r == exchange.ReasonWrongPeer {
		e = ledger.Entry{Header: ledger.Header{Partner: in.Peer.Agency}}
	} else {
		e = inboundEntry(in, n.Policy().Version(), "")
		e.Body = ledger.Body{}
		if _, err := ident.ParseKind(e.Kind); err != nil {
			e.Kind = ""
		}
	}
	e.Type, e.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
	e.Count = 0
	start := time.Now()
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) { return n.aud.Append(ctx, e) }); err != nil {
		n.log.Warn("record refused match request", "partner", in.Peer.Agency, "reason", string(r), "err", err)
	}
	n.mm.stage("in", "ledger", start)
	n.mm.query("in", in.Peer.Agency, metricKind(in.Kind), "refused")
	n.mm.denial("in", string(r))
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
			RequestSigDigest: in.SignatureSHA256,
		},
		Body: ledger.Body{Actor: "agency:" + in.Peer.Agency, Purpose: in.Purpose, LegalBasis: in.LegalBasis,
			Offence: in.Offence, CaseRef: in.CaseRef},
	}
}

// partnerReason maps a policy reason ID to the closed list a partner may
// see; a forbid's own @reason and the case budget become not_permitted.
func partnerReason(id string) exchange.Reason {
	if r := exchange.Reason(id); r.Valid() {
		return r
	}
	return exchange.ReasonNotPermitted
}

// budgetReason says which budget denied an admission: it adds up the
// admitted inbound entries that drew on each reservation's key (the ledger
// keeps the totals but says only "budget") and names the first one the
// request would pass. It reads the ledger only on this denial path.
func (n *Node) budgetReason(res []policy.Reservation, in *exchange.Inbound) exchange.Reason {
	entries, err := n.aud.Entries(context.Background(), ledger.Filter{Types: []ledger.Type{ledger.TypeMatchIn}})
	if err != nil {
		return exchange.ReasonPartnerBudget
	}
	today := n.now().UTC().Format("2006-01-02")
	for _, r := range res {
		seg := strings.Split(r.Key, "/")
		var used int64
		for i := range entries {
			e := &entries[i]
			day := e.Time.UTC().Format("2006-01-02")
			switch {
			case seg[0] == "partner" && len(seg) == 4 && e.Partner == seg[1] && e.Kind == seg[2] && day == today,
				seg[0] == "kind" && len(seg) == 3 && e.Kind == seg[1] && day == today,
				seg[0] == "key" && len(seg) == 3 && e.Kind == seg[2] && strconv.FormatUint(e.Epoch, 10) == seg[1],
				seg[0] == "case" && !e.Pruned && e.Partner == in.Peer.Agency && e.Body.CaseRef == in.CaseRef:
				used += int64(e.PaddedSize)
			}
		}
		if used > r.Limit-r.Amount {
			switch seg[0] {
			case "kind":
				return exchange.ReasonKindCap
			case "key":
				return exchange.ReasonKeyExhausted
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

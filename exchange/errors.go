package exchange

import (
	"errors"
	"fmt"
	"time"

	"github.com/xborder/xborder/policy"
)

// Reason is a partner-visible reason code of a denial: one of the closed
// list below. Reasons name only what the protocol or the policy defines,
// never the request's free text, so both sides may log and record them.
type Reason string

// Reasons the exchange decides itself.
const (
	// ReasonWrongPeer: the stream's pinned agency is not the request's
	// querier.
	ReasonWrongPeer Reason = "wrong_peer"
	// ReasonWrongResponder: the request names another agency as responder
	// or owner.
	ReasonWrongResponder Reason = "wrong_responder"
	// ReasonBadSignature: the request's signature does not verify under the
	// querier's pinned agency key.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonClockSkew: the request's time is more than the allowed skew
	// away from the responder's clock; the answer carries that clock.
	ReasonClockSkew Reason = "clock_skew"
	// ReasonTooLarge: the batch is larger than the responder accepts.
	ReasonTooLarge Reason = "too_large"
	// ReasonBadBatch: the batch does not match its signed digest, or its
	// kind, epoch or size differ from the signed ones.
	ReasonBadBatch Reason = "bad_batch"
	// ReasonBadRequest: the batch does not decode (a bad or identity
	// element, a bad shape), the request misses a field, or its mode or
	// reaches are not ones the protocol defines (unknown, repeated, out of
	// the canonical order).
	ReasonBadRequest Reason = policy.ReasonBadRequest
	// ReasonUnknownEpoch: the responder holds no key or set for the kind
	// and epoch: sync the newest card and ask again.
	ReasonUnknownEpoch Reason = "unknown_epoch"
	// ReasonReplay: the request ID was seen before (the ledger's replay
	// window).
	ReasonReplay Reason = "replay"
	// ReasonReachNotAllowed: the request asks a reach that the responder's
	// policy does not allow the partner in the request's mode (for
	// example the victim reach in enforcement mode). Nothing was
	// evaluated, under no reach's key. node's Admitter returns it.
	ReasonReachNotAllowed Reason = "reach_not_allowed"
)

// Reasons of the responder's policy (package policy) that a partner may see.
const (
	ReasonNotPermitted      Reason = policy.ReasonNotPermitted
	ReasonUnknownPartner    Reason = policy.ReasonUnknownPartner
	ReasonKindNotAllowed    Reason = policy.ReasonKindNotAllowed
	ReasonBadSize           Reason = policy.ReasonBadSize
	ReasonSizeOverCap       Reason = policy.ReasonSizeOverCap
	ReasonMissingLegalBasis Reason = policy.ReasonMissingLegalBasis
	ReasonMissingCaseRef    Reason = policy.ReasonMissingCaseRef
	ReasonMissingPurpose    Reason = policy.ReasonMissingPurpose
	ReasonOffenceNotListed  Reason = policy.ReasonOffenceNotListed
	ReasonPartnerBudget     Reason = policy.ReasonPartnerBudget
	ReasonKindCap           Reason = policy.ReasonKindCap
	ReasonKeyExhausted      Reason = policy.ReasonKeyExhausted
)

// reasons is the closed list: answers carry only these, and a querier
// refuses an answer with any other.
var reasons = map[Reason]bool{
	ReasonWrongPeer: true, ReasonWrongResponder: true, ReasonBadSignature: true,
	ReasonClockSkew: true, ReasonTooLarge: true, ReasonBadBatch: true, ReasonBadRequest: true,
	ReasonUnknownEpoch: true, ReasonReplay: true, ReasonReachNotAllowed: true, ReasonNotPermitted: true,
	ReasonUnknownPartner: true, ReasonKindNotAllowed: true, ReasonBadSize: true,
	ReasonSizeOverCap: true, ReasonMissingLegalBasis: true, ReasonMissingCaseRef: true,
	ReasonMissingPurpose: true, ReasonOffenceNotListed: true, ReasonPartnerBudget: true,
	ReasonKindCap: true, ReasonKeyExhausted: true,
}

// Valid reports whether r is one of the partner-visible reason codes.
func (r Reason) Valid() bool { return reasons[r] }

// DeniedError is a denial: the responder (or owner) refused the request for
// Reason and evaluated or served nothing. An Admitter or SyncAuthorizer
// returns one to deny; Client.Match and Client.Sync return one when the
// partner denied. The CLI maps it to exit code 3.
type DeniedError struct {
	Agency string    // the agency that denied
	Reason Reason    // why, from the closed list
	Time   time.Time // the denying side's clock (zero when local)
}

func (e *DeniedError) Error() string {
	if e.Time.IsZero() {
		return fmt.Sprintf("denied by %s: %s", e.Agency, e.Reason)
	}
	return fmt.Sprintf("denied by %s: %s (their time %s)", e.Agency, e.Reason, e.Time.UTC().Format(time.RFC3339Nano))
}

// Deny returns a *DeniedError for r, for an Admitter or SyncAuthorizer to
// return.
func Deny(r Reason) error { return &DeniedError{Reason: r} }

var (
	// ErrUnavailable: the partner (or this node) cannot serve now: no
	// ledger quorum, a stream that failed or timed out, the partner
	// unreachable. Nothing was evaluated; retry later. An Admitter returns
	// an error wrapping it when the ledger has no quorum. The CLI maps it to
	// exit code 4.
	ErrUnavailable = errors.New("partner unavailable")
	// ErrVerify: an answer, a set or a card does not verify: a bad
	// signature, a digest or an epoch key that the pinned agency key did not
	// sign, an answer to another request. Use nothing of it. The CLI maps it
	// to exit code 5.
	ErrVerify = errors.New("partner answer does not verify")
	// ErrNoSet: a Responders or Sets implementation holds nothing for the
	// kind, epoch and reach asked for; the partner is denied with
	// ReasonUnknownEpoch.
	ErrNoSet = errors.New("no key or set for this kind, epoch and reach")
)

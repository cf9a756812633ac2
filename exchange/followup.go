package exchange

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// ProtoFollowup carries step 2 (issue 23): a querier's follow-up of hits
// of a match request it sent, and its polls for the owner's answer
// (docs/followup.md).
const ProtoFollowup = "/xborder/followup/1.0.0"

// MaxFollowupTags is the most hits one follow-up may name.
const MaxFollowupTags = wire.MaxFollowupTags

// Reasons only the follow-up protocol gives.
const (
	// ReasonUnknownRequest: the owner answered no match request of this ID
	// from this partner for this kind, epoch and mode (no match_in entry),
	// or the request was not evaluated under the reach a tag names.
	ReasonUnknownRequest Reason = "unknown_request"
	// ReasonWindowClosed: the match request is older than the owner's
	// follow-up window (limits file; 30 days by default).
	ReasonWindowClosed Reason = "window_closed"
	// ReasonUnknownFollowup: a poll for a follow-up the owner holds none
	// of from this partner.
	ReasonUnknownFollowup Reason = "unknown_followup"
)

// followupReasons is the closed list of reasons a follow-up
// acknowledgement or poll may carry; a querier refuses any other.
var followupReasons = map[Reason]bool{
	ReasonWrongPeer: true, ReasonWrongResponder: true, ReasonBadSignature: true, ReasonClockSkew: true,
	ReasonBadRequest: true, ReasonReplay: true, ReasonReachNotAllowed: true, ReasonNotPermitted: true,
	ReasonUnknownPartner: true, ReasonKindNotAllowed: true, ReasonMissingLegalBasis: true,
	ReasonMissingPurpose: true, ReasonPartnerBudget: true,
	ReasonUnknownRequest: true, ReasonWindowClosed: true, ReasonUnknownFollowup: true,
}

// ErrNoFollowup: a FollowupAnswers implementation holds no follow-up of
// this ID from this partner; the poll is denied with
// ReasonUnknownFollowup.
var ErrNoFollowup = errors.New("no follow-up of this ID from this partner")

// FollowupTag is one hit a follow-up names: the tag of its PRF output
// (psi.Query.HitTags) and the reach whose key computed that output.
type FollowupTag struct {
	Reach string
	Tag   psi.Tag
}

// InboundFollowup is what an owner knows of a follow-up once the server
// has checked it: the pinned peer and the signed fields. The text fields
// can be personal data of officers, and the tags name the owner's records:
// keep all of them out of logs, and the tags out of every store (map them
// to records, then drop them).
type InboundFollowup struct {
	Peer      Peer
	ID        [16]byte  // the follow-up ID
	RequestID [16]byte  // the match request it follows up
	Time      time.Time // the querier's clock
	Querier   string
	Owner     string
	Kind      string
	Epoch     uint64
	// Mode is the mode the querier says the match request had; the
	// owner's match_in entry must agree.
	Mode    string
	Basis   string
	Purpose string
	Urgent  bool
	// Tags are the hits named, 1 to MaxFollowupTags, distinct, each of a
	// known reach (a victim or witness one only in safeguarding mode) once
	// the server checked them (unchecked in a Refused call).
	Tags []FollowupTag
	// SignatureSHA256 is SHA-256 of the request's signature, the ledger
	// header's request signature digest.
	SignatureSHA256 [32]byte
}

// FollowupInbox decides and records inbound follow-ups. node implements
// it with its ledger, policy and holdings.
type FollowupInbox interface {
	// Accept decides in and records it before the server acknowledges:
	// the owner's match_in entry of in.RequestID must exist, be from
	// in.Querier (the pinned peer's agency) for in.Kind, in.Epoch and
	// in.Mode, and have been evaluated under the reach of every tag
	// (else ReasonUnknownRequest); it must lie within the follow-up
	// window (else ReasonWindowClosed); policy must allow the follow-up
	// (a policy reason). A follow-up ID recorded before with the same
	// SignatureSHA256 is the querier's retry on another replica: return
	// the deadline already given, record nothing new; with another
	// signature it is ReasonReplay.
	// Then it maps the tags to records (psi.TagIndex), commits a
	// followup_in entry (follow-up ID, request ID, partner, number of
	// tags, number matched, basis, urgency; never a tag nor a record),
	// queues the follow-up for the liaison and returns the answer's
	// deadline (8 hours urgent, 7 days standard, from the limits file).
	// A denial is a *DeniedError (Deny), recorded first; an error wrapping
	// ErrUnavailable (no quorum) or any other error answers
	// "unavailable".
	Accept(ctx context.Context, in *InboundFollowup) (deadline time.Time, err error)
	// Refused records a follow-up the server refused itself (wrong peer,
	// bad signature, wrong owner, clock skew, bad request, a reach not
	// allowed in the mode, a copy of one accepted). Fields other than Peer
	// are unauthenticated when the reason is ReasonBadSignature or
	// ReasonWrongPeer. Record the counts, never in.Tags. An error means
	// the refusal is not recorded: the server answers "unavailable".
	Refused(ctx context.Context, in *InboundFollowup, r Reason) error
}

// FollowupState is the owner's state of one follow-up.
type FollowupState struct {
	// Deadline is when the answer is due (Accept's deadline).
	Deadline time.Time
	// Answer is the owner's signed decision (SignFollowupAnswer's bytes),
	// nil while the liaison has not decided.
	Answer []byte
}

// FollowupAnswers gives the state of the follow-ups an owner accepted.
// node implements it with its replicated records, so that any replica
// serves a poll.
type FollowupAnswers interface {
	// State returns the state of follow-up id that partner sent, or an
	// error wrapping ErrNoFollowup when there is none from that partner
	// (also when another partner sent it). Any other error answers
	// "unavailable".
	State(ctx context.Context, partner string, id [16]byte) (*FollowupState, error)
}

// FollowupConfig configures a FollowupServer. Agency, Signer, Keys, Inbox
// and Answers are required.
type FollowupConfig struct {
	// Agency is this agency's code.
	Agency string
	// Signer is the agency key; it signs acknowledgements and poll
	// replies. Its public key must be an ed25519.PublicKey.
	Signer  crypto.Signer
	Keys    Keys
	Inbox   FollowupInbox
	Answers FollowupAnswers
	// Clock is the time requests are checked against; nil means time.Now.
	Clock func() time.Time
	// MaxSkew is the largest accepted distance between a request's time
	// and Clock; zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// Timeout bounds each stream; zero means DefaultTimeout.
	Timeout time.Duration
	// RefusalBurst, RefusalRate and MaxInFlight are the per-partner limits
	// (as ServerConfig's), with a budget of their own: follow-up refusals
	// never throttle a partner's matches, nor the reverse. Zero means the
	// default.
	RefusalBurst int
	RefusalRate  float64
	MaxInFlight  int
	// Throttled, when set, is called once per stream reset because its
	// partner agency is over its refusal budget. It must not block.
	Throttled func(from Peer, proto string)
	// Logger receives one line per refused or failed stream, with the
	// follow-up ID and counts, never a tag; nil discards.
	Logger *slog.Logger
}

// FollowupServer serves ProtoFollowup on the owner's side: it checks and
// acknowledges follow-ups (FollowupInbox) and answers polls with the
// owner's signed answer (FollowupAnswers). It is safe for concurrent use
// and starts no goroutine. node registers it with its host:
// host.Handle(exchange.ProtoFollowup, srv.Handle).
type FollowupServer struct {
	cfg    FollowupConfig
	log    *slog.Logger
	limits *partnerLimits
	seen   *evaluated
}

// NewFollowupServer checks cfg and returns a server.
func NewFollowupServer(cfg FollowupConfig) (*FollowupServer, error) {
	switch {
	case cfg.Agency == "":
		return nil, errors.New("new follow-up server: no agency")
	case cfg.Signer == nil || cfg.Keys == nil || cfg.Inbox == nil || cfg.Answers == nil:
		return nil, errors.New("new follow-up server: signer, keys, inbox and answers are required")
	case cfg.RefusalBurst < 0 || cfg.RefusalRate < 0 || cfg.MaxInFlight < 0:
		return nil, errors.New("new follow-up server: negative refusal burst, refusal rate or requests in flight")
	}
	if _, ok := cfg.Signer.Public().(ed25519.PublicKey); !ok {
		return nil, errors.New("new follow-up server: signer is not an ed25519 key")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &FollowupServer{cfg: cfg, log: lg.With("component", "followup"),
		limits: newPartnerLimits(cfg.RefusalBurst, cfg.RefusalRate, cfg.MaxInFlight), seen: newEvaluated(cfg.MaxSkew)}, nil
}

// Handle serves one ProtoFollowup stream from an admitted peer: one call
// frame (a follow-up or a poll), one signed reply frame. The partner
// limits apply first; bytes that do not frame or decode reset the stream.
// It returns when the stream is done; the caller closes it.
func (s *FollowupServer) Handle(ctx context.Context, from Peer, st Stream) {
	d := time.Now().Add(s.cfg.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	if err := st.SetDeadline(d); err != nil {
		_ = st.Reset()
		return
	}
	ctx, cancel := context.WithDeadline(ctx, d)
	defer cancel()
	release, ok := s.limits.acquire(ctx, from.Agency, ProtoFollowup, s.cfg.Clock())
	if !ok {
		_ = st.Reset()
		return
	}
	defer release()
	if ok, first := s.limits.draw(from.Agency, s.cfg.Clock()); !ok {
		if first {
			s.log.Warn("partner throttled: too many refused follow-ups; its streams are reset until its budget refills",
				"peer", string(from.ID), "partner", from.Agency)
		}
		if s.cfg.Throttled != nil {
			s.cfg.Throttled(from, ProtoFollowup)
		}
		_ = st.Reset()
		return
	}
	log := s.log.With("peer", string(from.ID), "partner", from.Agency, "proto", ProtoFollowup)
	call, ok := readRequest(st, wire.MaxFollowupCall, wire.UnmarshalFollowupCall, log, "follow-up")
	if !ok {
		return
	}
	var reply []byte
	var refused bool
	if call.Request != nil {
		reply, refused = s.followup(ctx, from, call.Request, log)
	} else {
		reply, refused = s.poll(ctx, from, call.Poll, log)
	}
	if !refused {
		s.limits.refund(from.Agency, s.cfg.Clock())
	}
	if reply == nil {
		_ = st.Reset()
		return
	}
	if err := wire.WriteFrame(st, reply); err != nil {
		log.Warn("write follow-up reply", "err", err)
		_ = st.Reset()
		return
	}
	_ = st.CloseWrite()
}

// followup checks a follow-up request, asks the inbox, and returns the
// signed acknowledgement (nil when it cannot be signed) and whether it is
// a refusal.
func (s *FollowupServer) followup(ctx context.Context, from Peer, m *wire.FollowupRequest, log *slog.Logger) ([]byte, bool) {
	in := inboundFollowup(from, m)
	log = log.With("followup", hex.EncodeToString(m.ID), "query", hex.EncodeToString(m.RequestID), "tags", len(m.Tags))
	ack := &wire.FollowupAck{ID: m.ID, Owner: s.cfg.Agency, Querier: m.Querier, RequestSignatureSHA256: in.SignatureSHA256[:]}
	deadline, reason, err := s.accept(ctx, from, m, in)
	switch {
	case reason != "":
		log.Info("follow-up denied", "reason", string(reason))
		ack.Status, ack.Reason = wire.StatusDenied, string(reason)
	case err != nil:
		log.Warn("follow-up unavailable", "err", err)
		ack.Status = wire.StatusUnavailable
	default:
		log.Info("follow-up accepted", "urgent", in.Urgent, "deadline", deadline)
		ack.Status, ack.DeadlineUnixMs = wire.StatusOK, unixMs(deadline)
	}
	ack.TimeUnixMs = unixMs(s.cfg.Clock())
	if ack.Signature, err = s.sign(ack.SignedBytes()); err != nil {
		log.Error("sign follow-up ack", "err", err)
		return nil, reason != ""
	}
	return ack.Marshal(), reason != ""
}

// accept runs the owner's checks in order (docs/followup.md) and returns
// the deadline, a denial reason, or an error for "unavailable".
func (s *FollowupServer) accept(ctx context.Context, from Peer, m *wire.FollowupRequest, in *InboundFollowup) (time.Time, Reason, error) {
	refuse := func(r Reason) (time.Time, Reason, error) {
		if err := s.cfg.Inbox.Refused(ctx, in, r); err != nil {
			return time.Time{}, "", fmt.Errorf("record refusal %s: %w", r, err)
		}
		return time.Time{}, r, nil
	}
	if from.Agency != m.Querier {
		return refuse(ReasonWrongPeer)
	}
	key, err := s.cfg.Keys.AgencyKey(m.Querier)
	if err != nil || len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, m.SignedBytes(), m.Signature) {
		return refuse(ReasonBadSignature)
	}
	if m.Owner != s.cfg.Agency {
		return refuse(ReasonWrongResponder)
	}
	if !fresh(in.Time, s.cfg.Clock(), s.cfg.MaxSkew) {
		return refuse(ReasonClockSkew)
	}
	if err := checkFollowup(in.Kind, in.Mode, in.Basis, in.Purpose, in.Tags); err != nil {
		if errors.Is(err, errReachInMode) {
			return refuse(ReasonReachNotAllowed)
		}
		return refuse(ReasonBadRequest)
	}
	// A copy of a follow-up this server accepted is a replay here; the
	// inbox refuses a follow-up ID seen before on any replica.
	if !s.seen.add(in.SignatureSHA256, in.Time, s.cfg.Clock()) {
		return refuse(ReasonReplay)
	}
	deadline, err := s.cfg.Inbox.Accept(ctx, in)
	if err != nil {
		var d *DeniedError
		if errors.As(err, &d) {
			r := d.Reason
			if !followupReasons[r] {
				r = ReasonNotPermitted
			}
			return time.Time{}, r, nil
		}
		s.seen.forget(in.SignatureSHA256)
		return time.Time{}, "", fmt.Errorf("accept: %w", err)
	}
	if deadline.IsZero() {
		s.seen.forget(in.SignatureSHA256)
		return time.Time{}, "", errors.New("accept: no deadline")
	}
	return deadline, "", nil
}

// errReachInMode marks a tag of a reach its mode may not name.
var errReachInMode = errors.New("a victim or witness hit named outside safeguarding mode")

// checkFollowup checks a follow-up's shape: a kind, a valid mode, a legal
// basis and a purpose, 1 to MaxFollowupTags distinct tags of known
// reaches, and victim or witness tags only in safeguarding mode (an
// enforcement request was never evaluated under their keys, so such a tag
// names nothing the querier may have hit).
func checkFollowup(kind, mode, basis, purpose string, tags []FollowupTag) error {
	switch {
	case kind == "":
		return errors.New("no kind")
	case !ValidMode(mode):
		return fmt.Errorf("mode %q: want %q or %q", mode, ModeEnforcement, ModeSafeguarding)
	case basis == "" || purpose == "":
		return errors.New("a follow-up needs a legal basis and a purpose")
	case len(tags) == 0 || len(tags) > MaxFollowupTags:
		return fmt.Errorf("%d hits named: name 1 to %d", len(tags), MaxFollowupTags)
	}
	seen := make(map[psi.Tag]bool, len(tags))
	for i, t := range tags {
		if !ValidReach(t.Reach) {
			return fmt.Errorf("hit %d: unknown reach %q", i+1, t.Reach)
		}
		if t.Reach != ReachOpen && mode != ModeSafeguarding {
			return fmt.Errorf("hit %d of reach %s: %w", i+1, t.Reach, errReachInMode)
		}
		if seen[t.Tag] {
			return fmt.Errorf("hit %d named twice", i+1)
		}
		seen[t.Tag] = true
	}
	return nil
}

func inboundFollowup(from Peer, m *wire.FollowupRequest) *InboundFollowup {
	in := &InboundFollowup{
		Peer: from, Time: fromUnixMs(m.TimeUnixMs), Querier: m.Querier, Owner: m.Owner, Kind: m.Kind,
		Epoch: m.Epoch, Mode: m.Mode, Basis: m.Basis, Purpose: m.Purpose, Urgent: m.Urgent,
		SignatureSHA256: sha256.Sum256(m.Signature),
	}
	copy(in.ID[:], m.ID)
	copy(in.RequestID[:], m.RequestID)
	in.Tags = make([]FollowupTag, len(m.Tags))
	for i, t := range m.Tags {
		in.Tags[i].Reach = t.Reach
		copy(in.Tags[i].Tag[:], t.Tag)
	}
	return in
}

// poll checks a poll and returns the signed status (nil when it cannot be
// signed) and whether it is a refusal. Polls are reads: a refused poll is
// logged, not recorded.
func (s *FollowupServer) poll(ctx context.Context, from Peer, m *wire.FollowupPoll, log *slog.Logger) ([]byte, bool) {
	log = log.With("followup", hex.EncodeToString(m.FollowupID))
	st := &wire.FollowupStatus{PollID: m.PollID, Owner: s.cfg.Agency, Querier: m.Querier, FollowupID: m.FollowupID}
	reason, err := s.state(ctx, from, m, st)
	switch {
	case reason != "":
		log.Info("follow-up poll denied", "reason", string(reason))
		st.Status, st.Reason = wire.StatusDenied, string(reason)
	case err != nil:
		log.Warn("follow-up poll unavailable", "err", err)
		st.Status, st.DeadlineUnixMs, st.Answer = wire.StatusUnavailable, 0, nil
	default:
		st.Status = wire.StatusOK
	}
	st.TimeUnixMs = unixMs(s.cfg.Clock())
	sig, err := s.sign(st.SignedBytes())
	if err != nil {
		log.Error("sign follow-up status", "err", err)
		return nil, reason != ""
	}
	st.Signature = sig
	return st.Marshal(), reason != ""
}

// state fills st with the follow-up's deadline and answer, or returns a
// denial reason or an error for "unavailable".
func (s *FollowupServer) state(ctx context.Context, from Peer, m *wire.FollowupPoll, st *wire.FollowupStatus) (Reason, error) {
	if from.Agency != m.Querier {
		return ReasonWrongPeer, nil
	}
	key, err := s.cfg.Keys.AgencyKey(m.Querier)
	if err != nil || len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, m.SignedBytes(), m.Signature) {
		return ReasonBadSignature, nil
	}
	if m.Owner != s.cfg.Agency {
		return ReasonWrongResponder, nil
	}
	if !fresh(fromUnixMs(m.TimeUnixMs), s.cfg.Clock(), s.cfg.MaxSkew) {
		return ReasonClockSkew, nil
	}
	var id [16]byte
	copy(id[:], m.FollowupID)
	fs, err := s.cfg.Answers.State(ctx, from.Agency, id)
	if errors.Is(err, ErrNoFollowup) {
		return ReasonUnknownFollowup, nil
	}
	if err != nil {
		return "", fmt.Errorf("follow-up state: %w", err)
	}
	if fs == nil || fs.Deadline.IsZero() {
		return "", errors.New("follow-up state without a deadline")
	}
	if fs.Answer != nil {
		// Serve only an answer to this follow-up of this partner, by
		// this agency: a store mix-up must not hand one partner
		// another's answer.
		a, err := wire.UnmarshalFollowupAnswer(fs.Answer)
		if err != nil {
			return "", fmt.Errorf("stored follow-up answer: %w", err)
		}
		if !bytes.Equal(a.FollowupID, m.FollowupID) || a.Querier != from.Agency || a.Owner != s.cfg.Agency {
			return "", errors.New("stored follow-up answer is of another follow-up")
		}
		st.Answer = fs.Answer
	}
	st.DeadlineUnixMs = unixMs(fs.Deadline)
	return "", nil
}

func (s *FollowupServer) sign(msg []byte) ([]byte, error) {
	sig, err := s.cfg.Signer.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

package exchange

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/xborder/xborder/internal/wire"
)

// Followup is one follow-up of hits of a match request this agency sent
// to Owner.
type Followup struct {
	// ID is the follow-up ID; zero draws a random one. node sets it to
	// the ID its followup_out entry was committed under.
	ID [16]byte
	// Time is the request's time; zero means the client's clock now.
	Time  time.Time
	Owner string // the partner whose records were hit
	// RequestID, Kind, Epoch and Mode are those of the match request
	// whose hits are followed up.
	RequestID [16]byte
	Kind      string
	Epoch     uint64
	Mode      string
	// Tags name the hits, 1 to MaxFollowupTags: psi.Query.HitTags of that
	// request's evaluations, never anything else. A victim or witness hit
	// only in safeguarding mode.
	Tags    []FollowupTag
	Basis   string // legal basis; required
	Purpose string // required
	Urgent  bool
}

// FollowupAck is the owner's verified acknowledgement of a follow-up.
type FollowupAck struct {
	ID       [16]byte
	Deadline time.Time // when the owner's answer is due
	Time     time.Time // the owner's clock
}

// Followup sends f to peer (a replica of f.Owner) over a new ProtoFollowup
// stream and returns the owner's acknowledgement with the answer's
// deadline. It fails before sending when f is malformed (no tags, too
// many, a victim or witness hit outside safeguarding mode), with a
// *DeniedError when the owner refused (ReasonUnknownRequest,
// ReasonWindowClosed, ReasonReplay, a policy reason), with ErrUnavailable
// when the owner or the stream failed (send the same follow-up again: a
// replica that already accepted it says ReasonReplay, and PollFollowup
// then gives its deadline), and with ErrVerify when the acknowledgement
// is not signed by f.Owner's pinned key or answers another request.
func (c *Client) Followup(ctx context.Context, o Opener, peer PeerID, f Followup) (*FollowupAck, error) {
	if f.Owner == "" {
		return nil, errors.New("follow-up: no owner")
	}
	if err := checkFollowup(f.Kind, f.Mode, f.Basis, f.Purpose, f.Tags); err != nil {
		return nil, fmt.Errorf("follow-up %s: %w", f.Owner, err)
	}
	pub, err := c.cfg.Keys.AgencyKey(f.Owner)
	if err != nil {
		return nil, fmt.Errorf("follow-up %s: %w", f.Owner, err)
	}
	if f.ID == ([16]byte{}) {
		if _, err := io.ReadFull(c.cfg.Rand, f.ID[:]); err != nil {
			return nil, fmt.Errorf("follow-up %s: draw follow-up ID: %w", f.Owner, err)
		}
	}
	at := f.Time
	if at.IsZero() {
		at = c.cfg.Clock()
	}
	m := &wire.FollowupRequest{
		ID: f.ID[:], TimeUnixMs: unixMs(at), Querier: c.cfg.Agency, Owner: f.Owner, RequestID: f.RequestID[:],
		Kind: f.Kind, Epoch: f.Epoch, Mode: f.Mode, Basis: f.Basis, Purpose: f.Purpose, Urgent: f.Urgent,
	}
	for _, t := range f.Tags {
		m.Tags = append(m.Tags, wire.FollowupTag{Reach: t.Reach, Tag: bytes.Clone(t.Tag[:])})
	}
	if m.Signature, err = c.sign(m.SignedBytes()); err != nil {
		return nil, fmt.Errorf("follow-up %s: %w", f.Owner, err)
	}
	call := (&wire.FollowupCall{Request: m}).Marshal()
	if len(call) > wire.MaxFollowupCall {
		return nil, fmt.Errorf("follow-up %s: request of %d bytes over %d: shorten the basis or purpose", f.Owner, len(call), wire.MaxFollowupCall)
	}
	b, err := c.roundTrip(ctx, o, peer, ProtoFollowup, call, wire.MaxFollowupAck)
	if err != nil {
		return nil, fmt.Errorf("follow-up %s: %w", f.Owner, err)
	}
	a, err := wire.UnmarshalFollowupAck(b)
	if err != nil {
		return nil, fmt.Errorf("follow-up %s: %w: %w", f.Owner, ErrVerify, err)
	}
	if !ed25519.Verify(pub, a.SignedBytes(), a.Signature) {
		return nil, fmt.Errorf("follow-up %s: acknowledgement signature: %w", f.Owner, ErrVerify)
	}
	sigSum := sha256.Sum256(m.Signature)
	if !bytes.Equal(a.ID, f.ID[:]) || a.Owner != f.Owner || a.Querier != c.cfg.Agency ||
		!bytes.Equal(a.RequestSignatureSHA256, sigSum[:]) {
		return nil, fmt.Errorf("follow-up %s: acknowledgement of another request: %w", f.Owner, ErrVerify)
	}
	t := fromUnixMs(a.TimeUnixMs)
	switch a.Status {
	case wire.StatusDenied:
		r := Reason(a.Reason)
		if !followupReasons[r] {
			return nil, fmt.Errorf("follow-up %s: unknown denial reason: %w", f.Owner, ErrVerify)
		}
		return nil, &DeniedError{Agency: f.Owner, Reason: r, Time: t}
	case wire.StatusUnavailable:
		return nil, fmt.Errorf("follow-up %s: %w", f.Owner, ErrUnavailable)
	}
	if a.DeadlineUnixMs == 0 {
		return nil, fmt.Errorf("follow-up %s: accepted without a deadline: %w", f.Owner, ErrVerify)
	}
	return &FollowupAck{ID: f.ID, Deadline: fromUnixMs(a.DeadlineUnixMs), Time: t}, nil
}

// FollowupPoll names a follow-up this agency sent, to poll for its answer.
type FollowupPoll struct {
	Owner     string
	ID        [16]byte // the follow-up ID
	RequestID [16]byte // the match request it followed up
	Tags      int      // the number of hits it named; an answer naming a later hit is refused (zero: not checked)
}

// FollowupStatus is the owner's verified reply to a poll.
type FollowupStatus struct {
	Deadline time.Time // when the answer is due
	Time     time.Time // the owner's clock
	// Answer is the owner's decision, nil while pending; Signed holds its
	// signed bytes as received, to keep as evidence (the audit group's
	// records) and check again with VerifyFollowupAnswer.
	Answer *FollowupAnswer
	Signed []byte
}

// PollFollowup asks peer (a replica of p.Owner) for the state of a
// follow-up. Errors as for Followup; ReasonUnknownFollowup when the owner
// holds no such follow-up from this agency. The answer, when there is
// one, is checked: signed by p.Owner's pinned key, for p.ID, p.RequestID
// and this agency, naming only hits 1 to p.Tags.
func (c *Client) PollFollowup(ctx context.Context, o Opener, peer PeerID, p FollowupPoll) (*FollowupStatus, error) {
	if p.Owner == "" || p.ID == ([16]byte{}) {
		return nil, errors.New("poll follow-up: no owner or follow-up ID")
	}
	pub, err := c.cfg.Keys.AgencyKey(p.Owner)
	if err != nil {
		return nil, fmt.Errorf("poll follow-up %s: %w", p.Owner, err)
	}
	m := &wire.FollowupPoll{PollID: make([]byte, wire.IDSize), TimeUnixMs: unixMs(c.cfg.Clock()),
		Querier: c.cfg.Agency, Owner: p.Owner, FollowupID: p.ID[:]}
	if _, err := io.ReadFull(c.cfg.Rand, m.PollID); err != nil {
		return nil, fmt.Errorf("poll follow-up %s: draw poll ID: %w", p.Owner, err)
	}
	if m.Signature, err = c.sign(m.SignedBytes()); err != nil {
		return nil, fmt.Errorf("poll follow-up %s: %w", p.Owner, err)
	}
	b, err := c.roundTrip(ctx, o, peer, ProtoFollowup, (&wire.FollowupCall{Poll: m}).Marshal(), wire.MaxFollowupStatus)
	if err != nil {
		return nil, fmt.Errorf("poll follow-up %s: %w", p.Owner, err)
	}
	s, err := wire.UnmarshalFollowupStatus(b)
	if err != nil {
		return nil, fmt.Errorf("poll follow-up %s: %w: %w", p.Owner, ErrVerify, err)
	}
	if !ed25519.Verify(pub, s.SignedBytes(), s.Signature) {
		return nil, fmt.Errorf("poll follow-up %s: status signature: %w", p.Owner, ErrVerify)
	}
	if !bytes.Equal(s.PollID, m.PollID) || !bytes.Equal(s.FollowupID, p.ID[:]) || s.Owner != p.Owner || s.Querier != c.cfg.Agency {
		return nil, fmt.Errorf("poll follow-up %s: status of another poll: %w", p.Owner, ErrVerify)
	}
	t := fromUnixMs(s.TimeUnixMs)
	switch s.Status {
	case wire.StatusDenied:
		r := Reason(s.Reason)
		if !followupReasons[r] {
			return nil, fmt.Errorf("poll follow-up %s: unknown denial reason: %w", p.Owner, ErrVerify)
		}
		return nil, &DeniedError{Agency: p.Owner, Reason: r, Time: t}
	case wire.StatusUnavailable:
		return nil, fmt.Errorf("poll follow-up %s: %w", p.Owner, ErrUnavailable)
	}
	if s.DeadlineUnixMs == 0 {
		return nil, fmt.Errorf("poll follow-up %s: status without a deadline: %w", p.Owner, ErrVerify)
	}
	out := &FollowupStatus{Deadline: fromUnixMs(s.DeadlineUnixMs), Time: t}
	if s.Answer == nil {
		return out, nil
	}
	a, err := VerifyFollowupAnswer(pub, s.Answer)
	if err != nil {
		return nil, fmt.Errorf("poll follow-up %s: %w", p.Owner, err)
	}
	if a.FollowupID != p.ID || a.RequestID != p.RequestID || a.Owner != p.Owner || a.Querier != c.cfg.Agency {
		return nil, fmt.Errorf("poll follow-up %s: answer to another follow-up: %w", p.Owner, ErrVerify)
	}
	for _, sh := range a.Shared {
		if p.Tags > 0 && sh.Hit > p.Tags {
			return nil, fmt.Errorf("poll follow-up %s: answer names hit %d of %d: %w", p.Owner, sh.Hit, p.Tags, ErrVerify)
		}
	}
	out.Answer, out.Signed = a, bytes.Clone(s.Answer)
	return out, nil
}

// FollowupAnswer is an owner's decision on a follow-up: what it shares of
// the records hit, or why it refuses. Its content is for the asking
// investigator and auditors only: never log it.
type FollowupAnswer struct {
	FollowupID [16]byte
	RequestID  [16]byte  // the match request followed up
	Time       time.Time // when the owner decided
	Owner      string
	Querier    string
	// Refused marks a refusal, with Reason (text for the partner, at most
	// 1,024 bytes); a refusal shares nothing.
	Refused bool
	Reason  string
	// Handling is the handling code of what is shared (H0-H3 in the
	// limits file); required unless refused.
	Handling string
	Message  string
	Shared   []SharedRecord
}

// SharedRecord is what the owner shares of the record one hit named.
type SharedRecord struct {
	// Hit is the position of the hit's tag in the follow-up, from 1: the
	// answer names no tag, so the owner need keep none.
	Hit       int
	Reference string // the owner's record reference, at most 256 bytes
	Contact   string // a contact point for the record, at most 256 bytes
	Handling  string // the record's handling code when it differs from the answer's
}

// SignFollowupAnswer checks a (the liaison's or the auto-answer's
// decision), signs it with the owner's agency key, and returns its bytes:
// what FollowupAnswers.State serves, unchanged, on every poll. It refuses
// an answer that is not whole (no owner, querier, IDs or time; a refusal
// without reason or with records; a sharing without handling code or with
// a record that shares nothing, a hit out of 1 to MaxFollowupTags or
// named twice) or too long for the wire.
func SignFollowupAnswer(signer crypto.Signer, a *FollowupAnswer) ([]byte, error) {
	if err := checkAnswer(a); err != nil {
		return nil, fmt.Errorf("sign follow-up answer: %w", err)
	}
	m := &wire.FollowupAnswer{
		FollowupID: bytes.Clone(a.FollowupID[:]), TimeUnixMs: unixMs(a.Time), Owner: a.Owner, Querier: a.Querier,
		RequestID: bytes.Clone(a.RequestID[:]), Outcome: wire.OutcomeShared, Handling: a.Handling, Message: a.Message,
	}
	if a.Refused {
		m.Outcome, m.Reason = wire.OutcomeRefused, a.Reason
	}
	for _, s := range a.Shared {
		m.Shared = append(m.Shared, wire.Shared{Hit: uint64(s.Hit), Reference: s.Reference, Contact: s.Contact, Handling: s.Handling})
	}
	sig, err := signer.Sign(nil, m.SignedBytes(), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign follow-up answer: %w", err)
	}
	m.Signature = sig
	b := m.Marshal()
	if len(b) > wire.MaxFollowupAnswer {
		return nil, fmt.Errorf("sign follow-up answer: %d bytes over %d: shorten the message", len(b), wire.MaxFollowupAnswer)
	}
	if _, err := wire.UnmarshalFollowupAnswer(b); err != nil {
		return nil, fmt.Errorf("sign follow-up answer: a field is too long or holds a control character: %w", err)
	}
	return b, nil
}

func checkAnswer(a *FollowupAnswer) error {
	switch {
	case a == nil || a.Owner == "" || a.Querier == "" || a.Time.IsZero():
		return errors.New("no owner, querier or time")
	case a.FollowupID == ([16]byte{}) || a.RequestID == ([16]byte{}):
		return errors.New("no follow-up or request ID")
	case a.Refused && (a.Reason == "" || len(a.Shared) != 0):
		return errors.New("a refusal needs a reason and shares no record")
	case !a.Refused && (a.Handling == "" || a.Reason != ""):
		return errors.New("an answer that shares needs a handling code and has no refusal reason")
	case len(a.Shared) > MaxFollowupTags:
		return fmt.Errorf("%d records shared: at most %d", len(a.Shared), MaxFollowupTags)
	}
	seen := map[int]bool{}
	for _, s := range a.Shared {
		if s.Hit < 1 || s.Hit > MaxFollowupTags || seen[s.Hit] {
			return fmt.Errorf("hit %d out of 1 to %d or shared twice", s.Hit, MaxFollowupTags)
		}
		if s.Reference == "" && s.Contact == "" {
			return fmt.Errorf("hit %d shares neither reference nor contact", s.Hit)
		}
		seen[s.Hit] = true
	}
	return nil
}

// VerifyFollowupAnswer decodes a signed answer and checks its signature
// under key (the owner's pinned agency key) and its form (as
// SignFollowupAnswer makes it). Use it on receipt (PollFollowup does) and
// whenever a stored answer is shown. It fails with ErrVerify.
func VerifyFollowupAnswer(key ed25519.PublicKey, b []byte) (*FollowupAnswer, error) {
	m, err := wire.UnmarshalFollowupAnswer(b)
	if err != nil {
		return nil, fmt.Errorf("follow-up answer: %w: %w", ErrVerify, err)
	}
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, m.SignedBytes(), m.Signature) {
		return nil, fmt.Errorf("follow-up answer signature: %w", ErrVerify)
	}
	a := &FollowupAnswer{Time: fromUnixMs(m.TimeUnixMs), Owner: m.Owner, Querier: m.Querier,
		Refused: m.Outcome == wire.OutcomeRefused, Reason: m.Reason, Handling: m.Handling, Message: m.Message}
	copy(a.FollowupID[:], m.FollowupID)
	copy(a.RequestID[:], m.RequestID)
	for _, s := range m.Shared {
		a.Shared = append(a.Shared, SharedRecord{Hit: int(s.Hit), Reference: s.Reference, Contact: s.Contact, Handling: s.Handling})
	}
	if err := checkAnswer(a); err != nil {
		return nil, fmt.Errorf("follow-up answer: %w: %w", ErrVerify, err)
	}
	return a, nil
}

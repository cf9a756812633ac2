package exchange

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// matchFrameLimit is the largest request frame a server with this batch
// limit reads: the elements, the psi header and the metadata.
func matchFrameLimit(maxBatch int) int {
	return min(32*maxBatch+16<<10, wire.MaxMatchRequest)
}

// HandleMatch serves one match stream: wait for one of the partner's
// slots, draw on its refusal budget (a throttled partner's stream is reset
// unread), read the signed request, check peer, signature, freshness, size,
// batch digest, mode and reaches, ask the Admitter's policy (Permit, which
// decides on the mode and every reach), find the key of each reach, ask
// the Admitter to admit, and only then evaluate the one blinded batch under
// each reach's key (one evaluation and its proofs per reach) and answer. Refusals are
// answered with a signed denial; a malformed or oversized message resets
// the stream. It returns when the stream is done.
func (s *Server) HandleMatch(ctx context.Context, from Peer, st Stream) {
	ctx, cancel, err := s.deadline(ctx, st)
	if err != nil {
		_ = st.Reset()
		return
	}
	defer cancel()
	done, ok := s.admitStream(ctx, from, ProtoMatch, st, true)
	if !ok {
		return
	}
	refused := false
	defer func() { done(refused) }()
	log := s.log.With("peer", string(from.ID), "partner", from.Agency, "proto", ProtoMatch)
	m, ok := readRequest(st, matchFrameLimit(s.cfg.MaxBatch), wire.UnmarshalMatchRequest, log, "match")
	if !ok {
		return
	}
	in := inbound(from, m)
	log = log.With("query", hex.EncodeToString(m.ID))
	ans := &wire.MatchAnswer{ID: m.ID, Responder: s.cfg.Agency, Querier: m.Querier, BatchSHA256: m.BatchSHA256}
	evs, reason, err := s.match(ctx, from, m, in)
	switch {
	case reason != "":
		log.Info("match request denied", "reason", string(reason))
		ans.Status, ans.Reason = wire.StatusDenied, string(reason)
		refused = true
	case err != nil:
		log.Warn("match request unavailable", "err", err)
		ans.Status = wire.StatusUnavailable
	default:
		ans.Status = wire.StatusOK
		for _, ev := range evs {
			eb, err := ev.ev.MarshalBinary()
			if err != nil {
				log.Error("encode evaluation", "err", err)
				_ = st.Reset()
				return
			}
			sum := sha256.Sum256(eb)
			ans.Evaluated = append(ans.Evaluated, wire.Evaluated{Reach: ev.reach, SetVersion: uint64(ev.version), EvaluationSHA256: sum[:]})
			ans.Evaluations = append(ans.Evaluations, eb)
		}
	}
	ans.TimeUnixMs = unixMs(s.cfg.Clock())
	if ans.Signature, err = s.sign(ans.SignedBytes()); err != nil {
		log.Error("sign match answer", "err", err)
		_ = st.Reset()
		return
	}
	if err := wire.WriteFrame(st, ans.Marshal()); err != nil {
		log.Warn("write match answer", "err", err)
		_ = st.Reset()
		return
	}
	_ = st.CloseWrite()
}

// reachEvaluation is the evaluation of a batch under one reach's key.
type reachEvaluation struct {
	reach   string
	version uint32
	ev      *psi.Evaluation
}

// match checks an authenticated-looking request and evaluates it. It
// returns a denial reason, or an error for "unavailable", or the
// evaluations, one per reach asked, in the request's order.
func (s *Server) match(ctx context.Context, from Peer, m *wire.MatchRequest, in *Inbound) ([]reachEvaluation, Reason, error) {
	refuse := func(r Reason) ([]reachEvaluation, Reason, error) {
		if err := s.cfg.Admitter.Refused(ctx, in, r); err != nil {
			// No audit, no answer: a denial not recorded is not sent.
			return nil, "", fmt.Errorf("record refusal %s: %w", r, err)
		}
		return nil, r, nil
	}
	if from.Agency != m.Querier {
		return refuse(ReasonWrongPeer)
	}
	key, err := s.cfg.Keys.AgencyKey(m.Querier)
	if err != nil || len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, m.SignedBytes(), m.Signature) {
		return refuse(ReasonBadSignature)
	}
	if m.Responder != s.cfg.Agency {
		return refuse(ReasonWrongResponder)
	}
	if !fresh(in.Time, s.cfg.Clock(), s.cfg.MaxSkew) {
		return refuse(ReasonClockSkew)
	}
	if m.PaddedSize > uint64(s.cfg.MaxBatch) {
		return refuse(ReasonTooLarge)
	}
	if sum := sha256.Sum256(m.EvalRequest); !bytes.Equal(sum[:], m.BatchSHA256) {
		return refuse(ReasonBadBatch)
	}
	if m.Kind == "" || m.PaddedSize == 0 || !ValidMode(m.Mode) || checkReaches(m.Reaches) != nil {
		return refuse(ReasonBadRequest)
	}
	req, err := psi.UnmarshalEvalRequest(m.EvalRequest)
	if err != nil {
		return refuse(ReasonBadRequest)
	}
	if req.Kind != m.Kind || req.Epoch != m.Epoch || uint64(req.Len()) != m.PaddedSize {
		return refuse(ReasonBadBatch)
	}
	denied := func(op string, err error) ([]reachEvaluation, Reason, error) {
		var d *DeniedError
		if errors.As(err, &d) {
			r := d.Reason
			if !r.Valid() {
				r = ReasonNotPermitted
			}
			return nil, r, nil
		}
		return nil, "", fmt.Errorf("%s: %w", op, err)
	}
	// Policy first: what a partner may not ask, it learns nothing about,
	// not even whether a set of the kind, epoch and reach is held; a reach
	// not allowed in the mode denies the whole request.
	if err := s.cfg.Admitter.Permit(ctx, in); err != nil {
		return denied("permit", err)
	}
	evaluators := make([]Evaluator, len(m.Reaches))
	out := make([]reachEvaluation, len(m.Reaches))
	for i, reach := range m.Reaches {
		ev, version, err := s.cfg.Responders.Responder(m.Kind, m.Epoch, reach)
		if errors.Is(err, ErrNoSet) {
			return refuse(ReasonUnknownEpoch)
		}
		if err != nil {
			return nil, "", fmt.Errorf("find responder of reach %s: %w", reach, err)
		}
		evaluators[i], out[i] = ev, reachEvaluation{reach: reach, version: version}
	}
	// A copy of a request this server evaluated before is a replay here,
	// though the ledger admits it again as a retry (for another replica).
	if !s.seen.add(in.SignatureSHA256, in.Time, s.cfg.Clock()) {
		return refuse(ReasonReplay)
	}
	if err := s.cfg.Admitter.Admit(ctx, in); err != nil {
		if !errors.As(err, new(*DeniedError)) {
			// Unavailable: the querier may send the same bytes again.
			s.seen.forget(in.SignatureSHA256)
		}
		return denied("admit", err)
	}
	// One blinded batch, evaluated and proved under each reach's key.
	for i, ev := range evaluators {
		e, err := ev.Evaluate(req, s.cfg.Rand)
		if err != nil {
			s.seen.forget(in.SignatureSHA256)
			return nil, "", fmt.Errorf("evaluate reach %s: %w", out[i].reach, err)
		}
		out[i].ev = e
	}
	return out, "", nil
}

func inbound(from Peer, m *wire.MatchRequest) *Inbound {
	in := &Inbound{
		Peer: from, Time: fromUnixMs(m.TimeUnixMs), Querier: m.Querier, Responder: m.Responder,
		Kind: m.Kind, Epoch: m.Epoch, Mode: m.Mode, Reaches: slices.Clone(m.Reaches),
		CaseRef: m.CaseRef, LegalBasis: m.LegalBasis,
		Offence: m.Offence, Purpose: m.Purpose, Urgent: m.Urgent,
		SignatureSHA256: sha256.Sum256(m.Signature),
	}
	if m.PaddedSize <= MaxBatch {
		in.PaddedSize = int(m.PaddedSize)
	} else {
		in.PaddedSize = MaxBatch + 1
	}
	copy(in.ID[:], m.ID)
	copy(in.BatchSHA256[:], m.BatchSHA256)
	return in
}

// ClientConfig configures a Client. Agency, Signer and Keys are required;
// Cards is required for Sync.
type ClientConfig struct {
	// Agency is this agency's code.
	Agency string
	// Signer is the agency key; it signs requests.
	Signer crypto.Signer
	// Keys gives partners' pinned agency keys, which answers and sets must
	// be signed with.
	Keys Keys
	// Cards checks the cards partners serve over sync.
	Cards Cards
	// Clock stamps requests and checks answers' card validity; nil means
	// time.Now.
	Clock func() time.Time
	// Rand draws request IDs; nil means crypto/rand. It must be safe for
	// concurrent use.
	Rand io.Reader
	// Timeout bounds each stream; zero means DefaultTimeout.
	Timeout time.Duration
}

// Client asks partners: match queries and set syncs. It is safe for
// concurrent use and starts no goroutine.
type Client struct {
	cfg ClientConfig
}

// NewClient checks cfg and returns a client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Agency == "" || cfg.Signer == nil || cfg.Keys == nil {
		return nil, errors.New("new exchange client: agency, signer and keys are required")
	}
	if _, ok := cfg.Signer.Public().(ed25519.PublicKey); !ok {
		return nil, errors.New("new exchange client: signer is not an ed25519 key")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Client{cfg: cfg}, nil
}

// Query is one match query to one partner. Eval is the already blinded
// batch (psi.Querier.Blind); the rest is the signed metadata.
type Query struct {
	// ID is the request ID; zero draws a random one. node sets it to the
	// ID its outbound ledger entry was committed under.
	ID [16]byte
	// Time is the request's time; zero means the client's clock now. A
	// querier that asks another replica after one failed keeps ID and Time,
	// so the retry is byte-identical (Ed25519 signatures are deterministic)
	// and the responder's ledger treats it as one command, not a replay.
	Time      time.Time
	Responder string // the partner's agency code
	Kind      string
	Epoch     uint64
	// Mode is ModeEnforcement or ModeSafeguarding; required.
	Mode string
	// Reaches are the reaches asked, in canonical order (a subset of
	// Reaches); required. The responder evaluates Eval under the key of
	// each, or denies the whole request.
	Reaches []string
	// Keys are the partner's pinned public keys of (Kind, Epoch), one per
	// reach asked: each evaluation of the answer must prove that it was
	// computed under the key of the reach it names.
	Keys       map[string]*psi.PublicKey
	CaseRef    string
	LegalBasis string
	Offence    string
	Purpose    string
	Urgent     bool
	Eval       *psi.EvalRequest
}

// Answer is a verified match answer: one evaluation per reach asked, each
// proved under the pinned key of its reach.
type Answer struct {
	ID      [16]byte
	Results []Result  // one per reach asked, in the query's order
	Time    time.Time // the responder's clock
}

// Result is the responder's evaluation of the batch under one reach's key.
type Result struct {
	Reach string
	// Evaluation verified against Query.Keys[Reach]; finalise it with
	// psi.Query.MatchKey(Query.Keys[Reach], Evaluation, set of Reach),
	// which does not check the proofs again.
	Evaluation *psi.Evaluation
	SetVersion uint32 // the version of the reach's set the responder holds
}

// Match sends q to peer over a new ProtoMatch stream and returns the
// responder's verified evaluations, one per reach asked. It fails with a
// *DeniedError when the responder denied (with the reason and the
// responder's time), with ErrUnavailable when the responder or the stream
// failed, and with ErrVerify when the answer is not signed by the pinned
// agency key of q.Responder, does not answer q (another request, other
// reaches), or an evaluation's proofs do not verify under the pinned key
// of the reach it names.
func (c *Client) Match(ctx context.Context, o Opener, peer PeerID, q Query) (*Answer, error) {
	if q.Eval == nil || q.Responder == "" {
		return nil, errors.New("match: no batch or responder")
	}
	if !ValidMode(q.Mode) {
		return nil, fmt.Errorf("match %s: mode %q: want %q or %q", q.Responder, q.Mode, ModeEnforcement, ModeSafeguarding)
	}
	if err := checkReaches(q.Reaches); err != nil {
		return nil, fmt.Errorf("match %s: %v: name reaches among %v, in that order", q.Responder, err, Reaches)
	}
	for _, r := range q.Reaches {
		if q.Keys[r] == nil {
			return nil, fmt.Errorf("match %s: no pinned key of reach %s for %s epoch %d: sync the partner's card", q.Responder, r, q.Kind, q.Epoch)
		}
	}
	pub, err := c.cfg.Keys.AgencyKey(q.Responder)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", q.Responder, err)
	}
	if q.ID == ([16]byte{}) {
		if _, err := io.ReadFull(c.cfg.Rand, q.ID[:]); err != nil {
			return nil, fmt.Errorf("match %s: draw request ID: %w", q.Responder, err)
		}
	}
	eb, err := q.Eval.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("match %s: encode batch: %w", q.Responder, err)
	}
	sum := sha256.Sum256(eb)
	at := q.Time
	if at.IsZero() {
		at = c.cfg.Clock()
	}
	m := &wire.MatchRequest{
		ID: q.ID[:], TimeUnixMs: unixMs(at), Querier: c.cfg.Agency, Responder: q.Responder,
		Kind: q.Kind, Epoch: q.Epoch, PaddedSize: uint64(q.Eval.Len()), CaseRef: q.CaseRef,
		LegalBasis: q.LegalBasis, Offence: q.Offence, Purpose: q.Purpose, Urgent: q.Urgent,
		BatchSHA256: sum[:], Mode: q.Mode, Reaches: slices.Clone(q.Reaches), EvalRequest: eb,
	}
	if m.Signature, err = c.sign(m.SignedBytes()); err != nil {
		return nil, fmt.Errorf("match %s: %w", q.Responder, err)
	}
	b, err := c.roundTrip(ctx, o, peer, ProtoMatch, m.Marshal(), wire.MaxMatchAnswer)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", q.Responder, err)
	}
	a, err := wire.UnmarshalMatchAnswer(b)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w: %w", q.Responder, ErrVerify, err)
	}
	if !ed25519.Verify(pub, a.SignedBytes(), a.Signature) {
		return nil, fmt.Errorf("match %s: answer signature: %w", q.Responder, ErrVerify)
	}
	if !bytes.Equal(a.ID, q.ID[:]) || a.Responder != q.Responder || a.Querier != c.cfg.Agency ||
		!bytes.Equal(a.BatchSHA256, sum[:]) {
		return nil, fmt.Errorf("match %s: answer to another request: %w", q.Responder, ErrVerify)
	}
	t := fromUnixMs(a.TimeUnixMs)
	switch a.Status {
	case wire.StatusDenied:
		r := Reason(a.Reason)
		if !r.Valid() {
			return nil, fmt.Errorf("match %s: unknown denial reason: %w", q.Responder, ErrVerify)
		}
		return nil, &DeniedError{Agency: q.Responder, Reason: r, Time: t}
	case wire.StatusUnavailable:
		return nil, fmt.Errorf("match %s: %w", q.Responder, ErrUnavailable)
	}
	res, err := verifyResults(q, a)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", q.Responder, err)
	}
	return &Answer{ID: q.ID, Results: res, Time: t}, nil
}

// verifyResults checks that an answer with StatusOK carries one evaluation
// per reach asked, in order, each matching its signed digest and proved
// under the pinned key of its reach.
func verifyResults(q Query, a *wire.MatchAnswer) ([]Result, error) {
	if len(a.Evaluated) != len(q.Reaches) || len(a.Evaluations) != len(q.Reaches) {
		return nil, fmt.Errorf("%d evaluations for %d reaches: %w", len(a.Evaluated), len(q.Reaches), ErrVerify)
	}
	out := make([]Result, len(q.Reaches))
	for i, reach := range q.Reaches {
		e := a.Evaluated[i]
		if e.Reach != reach {
			return nil, fmt.Errorf("evaluation %d under reach %q; asked %q: %w", i, e.Reach, reach, ErrVerify)
		}
		if esum := sha256.Sum256(a.Evaluations[i]); !bytes.Equal(esum[:], e.EvaluationSHA256) || e.SetVersion > 1<<32-1 {
			return nil, fmt.Errorf("evaluation digest of reach %s: %w", reach, ErrVerify)
		}
		ev, err := psi.UnmarshalEvaluation(a.Evaluations[i])
		if err != nil {
			return nil, fmt.Errorf("reach %s: %w: %w", reach, ErrVerify, err)
		}
		if ev.Len() != q.Eval.Len() {
			return nil, fmt.Errorf("reach %s: %d evaluations for %d elements: %w", reach, ev.Len(), q.Eval.Len(), ErrVerify)
		}
		if err := psi.VerifyEvaluation(q.Keys[reach], q.Eval, ev); err != nil {
			return nil, fmt.Errorf("reach %s: %w: %w", reach, ErrVerify, err)
		}
		out[i] = Result{Reach: reach, Evaluation: ev, SetVersion: uint32(e.SetVersion)}
	}
	return out, nil
}

func (c *Client) sign(msg []byte) ([]byte, error) {
	sig, err := c.cfg.Signer.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// open opens a stream with the client's deadline.
func (c *Client) open(ctx context.Context, o Opener, peer PeerID, proto string) (Stream, error) {
	st, err := o.Open(ctx, peer, proto)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w: %w", ErrUnavailable, err)
	}
	d := time.Now().Add(c.cfg.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	if err := st.SetDeadline(d); err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("set deadline: %w: %w", ErrUnavailable, err)
	}
	return st, nil
}

// roundTrip writes one request frame and reads one answer frame.
func (c *Client) roundTrip(ctx context.Context, o Opener, peer PeerID, proto string, req []byte, limit int) ([]byte, error) {
	st, err := c.open(ctx, o, peer, proto)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if err := wire.WriteFrame(st, req); err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	b, err := wire.ReadFrame(wire.NewReader(st), limit)
	if errors.Is(err, wire.ErrMalformed) {
		_ = st.Reset()
		return nil, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("read answer: %w: %w", ErrUnavailable, err)
	}
	return b, nil
}

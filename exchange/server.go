package exchange

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// Defaults of ServerConfig and ClientConfig.
const (
	// DefaultMaxSkew is how far a request's time may lie from the
	// receiver's clock (DESIGN.md, "Network").
	DefaultMaxSkew = 2 * time.Minute
	// DefaultTimeout bounds a whole stream, request to answer.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxBatch is the largest padded batch a responder evaluates.
	DefaultMaxBatch = 65536
	// MaxBatch is the largest MaxBatch a responder may be configured with:
	// what the match request frame limit of internal/wire carries.
	MaxBatch = 262144
	// DefaultRefusalBurst is how many refused match requests (denials the
	// server or the node records) a partner agency may draw in a row before
	// the server throttles its match streams.
	DefaultRefusalBurst = 32
	// DefaultRefusalRate is how many refusals a second a partner agency's
	// budget of refusals refills by: 12 a minute.
	DefaultRefusalRate = 0.2
	// DefaultMaxInFlight is how many requests of one partner agency, per
	// protocol, a server reads and answers at once.
	DefaultMaxInFlight = 4
)

// Keys gives the pinned Ed25519 agency key of a partner agency. node
// implements it with its pins (the agency key of each pinned card).
type Keys interface {
	// AgencyKey returns the pinned key of agency, or an error when the
	// agency is not pinned.
	AgencyKey(agency string) (ed25519.PublicKey, error)
}

// Evaluator evaluates a blinded batch; *psi.Responder satisfies it.
type Evaluator interface {
	Evaluate(req *psi.EvalRequest, rnd io.Reader) (*psi.Evaluation, error)
}

// Responders gives the evaluator of one (kind, epoch, reach). node
// implements it with the epoch keys derived from its seeds and the encoded
// sets it has precomputed.
type Responders interface {
	// Responder returns the evaluator of (kind, epoch, reach) and the
	// version of the encoded set this replica holds for it (the answer
	// names it). It returns an error wrapping ErrNoSet when there is none:
	// the partner is denied with ReasonUnknownEpoch. Any other error
	// answers "unavailable". The server asks it only for reaches the
	// Admitter's Permit let through.
	Responder(kind string, epoch uint64, reach string) (Evaluator, uint32, error)
}

// Inbound is what a responder knows of a match request once it has checked
// it: the pinned peer and the signed fields. node's Admitter turns it into a
// policy request and a ledger admission. The text fields can be personal
// data of officers: keep them out of logs.
type Inbound struct {
	Peer      Peer
	ID        [16]byte
	Time      time.Time // the querier's clock
	Querier   string    // agency code
	Responder string    // agency code
	Kind      string
	Epoch     uint64
	// Mode is the signed query mode, ModeEnforcement or ModeSafeguarding
	// once the server checked it (unchecked in a Refused call).
	Mode string
	// Reaches are the signed reaches asked, known, distinct and in
	// canonical order once the server checked them (unchecked in a Refused
	// call). The server evaluates the batch under the key of each, or of
	// none: Permit and Admit refuse the whole request when one is not
	// allowed in Mode (ReasonReachNotAllowed).
	Reaches     []string
	PaddedSize  int
	CaseRef     string
	LegalBasis  string
	Offence     string
	Purpose     string
	Urgent      bool
	BatchSHA256 [32]byte
	// SignatureSHA256 is SHA-256 of the request's signature, the ledger
	// header's request signature digest.
	SignatureSHA256 [32]byte
}

// Admitter decides and records inbound match requests. node implements it
// with policy.Set.Decide and ledger.Admit. The server asks Permit before it
// looks up any set, so that a partner the policy refuses a kind never
// learns whether a set of that kind and epoch exists, then Admit once the
// set is found. Both decide on the mode and every reach of the request: a
// reach the policy does not allow in the mode denies the whole request
// with ReasonReachNotAllowed, and nothing is evaluated.
type Admitter interface {
	// Permit decides in by the policy in force alone: nil when the policy
	// would admit it, else a *DeniedError (as Admit returns one) after
	// recording the denial. It reserves nothing and commits no admit
	// entry; Admit decides again and commits. Errors as for Admit.
	Permit(ctx context.Context, in *Inbound) error
	// Admit checks policy and commits the admit entry (replay window,
	// policy version, budgets) before anything is evaluated. It returns
	// nil when admitted; a *DeniedError (see Deny) with a partner-visible
	// reason when denied, after recording the denial (a replayed request
	// ID is ReasonReplay); an error wrapping ErrUnavailable when the ledger
	// has no quorum. Any other error is answered as unavailable. A decision
	// made on a policy version that is no longer in force (the ledger's
	// ErrStalePolicy) should be made again by Admit, not returned.
	Admit(ctx context.Context, in *Inbound) error
	// Refused records a request the server refused itself before asking
	// Admit (bad signature, clock skew, wrong peer, too large, bad batch,
	// unknown epoch). Fields of in other than Peer are unauthenticated when
	// the reason is ReasonBadSignature or ReasonWrongPeer. An error means
	// the refusal is not recorded: the server answers "unavailable", never
	// a denial that no ledger holds.
	Refused(ctx context.Context, in *Inbound, r Reason) error
}

// EpochKey is the public key of one (kind, epoch, reach), as an agency card
// lists it.
type EpochKey struct {
	Kind  string
	Epoch uint64
	Reach string
	Key   []byte // psi.PublicKey, binary
}

// Holding is an owner's encoded set of one (kind, epoch, reach): the base
// set and the deltas after it.
type Holding struct {
	// Base is the base set's version, at least 1.
	Base uint32
	// Segments[0] is the psi.EncodedSet of version Base, Segments[i] the
	// psi.Delta of version Base+i, all in their binary form.
	Segments [][]byte
}

// Sets gives an owner's encoded sets and card. node implements it with the
// sets it precomputes (identical bytes on every replica) and its newest
// signed card.
type Sets interface {
	// Holding returns the set of (kind, epoch, reach), or an error
	// wrapping ErrNoSet.
	Holding(ctx context.Context, kind string, epoch uint64, reach string) (*Holding, error)
	// Card returns the agency's newest signed card in its binary form.
	Card(ctx context.Context) ([]byte, error)
}

// SyncAuthorizer says which kinds and reaches a partner may sync. node
// implements it with policy.Set.Decide (action sync): only kinds policy lets
// the partner query are served, and the victim and witness sets only to a
// partner whose safeguarding queries may reach them.
type SyncAuthorizer interface {
	// AllowSync returns nil when partner may fetch the set of kind and
	// reach, a *DeniedError otherwise (ReasonReachNotAllowed for a reach
	// withheld); any other error answers "unavailable".
	AllowSync(ctx context.Context, partner Peer, kind, reach string) error
}

// Served describes one sync about to be served.
type Served struct {
	Peer     Peer
	ID       [16]byte
	Kind     string
	Reach    string
	Epoch    uint64
	Base     uint32     // the base version the segments extend
	From     uint32     // the version the querier held (0: nothing)
	To       uint32     // the newest version sent
	Segments int        // segments sent
	Bytes    int        // bytes of set data sent
	Digests  [][32]byte // SHA-256 of each segment's data
}

// SyncAuditor records served syncs. node implements it by appending a sync
// entry to the audit ledger.
type SyncAuditor interface {
	// Synced is called before the segments are sent; an error (no quorum)
	// answers "unavailable" and sends nothing.
	Synced(ctx context.Context, s *Served) error
	// SyncRefused records a denied sync request (s has no segments). Its
	// fields other than Peer are unauthenticated when the reason is
	// ReasonBadSignature or ReasonWrongPeer. An error means the refusal is
	// not recorded: the server answers "unavailable" instead of the denial.
	SyncRefused(ctx context.Context, s *Served, r Reason) error
}

// ServerConfig configures a Server. Agency, Signer, Keys, Admitter and
// Responders are required for match; Sets, SyncAuthorizer and SyncAuditor
// for sync (a nil Sets refuses every sync stream).
type ServerConfig struct {
	// Agency is this agency's code.
	Agency string
	// Signer is the agency key; it signs answers and set segments. Its
	// public key must be an ed25519.PublicKey.
	Signer crypto.Signer
	// Keys gives partners' pinned agency keys.
	Keys           Keys
	Admitter       Admitter
	Responders     Responders
	Sets           Sets
	SyncAuthorizer SyncAuthorizer
	SyncAuditor    SyncAuditor
	// Clock is the time requests are checked against; nil means time.Now.
	// Stream deadlines always use the real clock.
	Clock func() time.Time
	// Rand draws proof nonces; nil means crypto/rand. It must be safe for
	// concurrent use: streams are served in parallel.
	Rand io.Reader
	// MaxSkew is the largest accepted distance between a request's time
	// and Clock; zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// Timeout bounds each stream; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxBatch is the largest padded batch evaluated; zero means
	// DefaultMaxBatch, at most MaxBatch.
	MaxBatch int
	// RefusalBurst is how many refused match requests a partner agency may
	// draw in a row; past it the server throttles the agency: it resets the
	// agency's match streams unread, records and evaluates nothing, and
	// calls Throttled, until the budget refills at RefusalRate a second. A
	// refusal is any denial answered (exchange's own checks and the
	// Admitter's). Sync refusals do not count: the SyncAuditor records one
	// per partner, kind and reason. Zero means DefaultRefusalBurst.
	RefusalBurst int
	// RefusalRate is how many refusals a second refill a partner agency's
	// budget; zero means DefaultRefusalRate. The budget is kept at Clock.
	RefusalRate float64
	// MaxInFlight is how many requests of one partner agency, per
	// protocol, the server reads and answers at once; the agency's other
	// streams wait for a slot until their deadline. Zero means
	// DefaultMaxInFlight.
	MaxInFlight int
	// Throttled, when set, is called once per stream reset because its
	// partner agency is over its refusal budget (node counts them in a
	// metric). It must not block.
	Throttled func(from Peer, proto string)
	// Logger receives one line per refused or failed stream; nil discards.
	Logger *slog.Logger
}

// Server answers the match and sync protocols. It is safe for concurrent
// use and starts no goroutine: each Handle call runs on the caller's
// goroutine and returns when the stream is done. node registers it with its
// host: host.Handle(exchange.ProtoMatch, srv.HandleMatch) and
// host.Handle(exchange.ProtoSync, srv.HandleSync).
type Server struct {
	cfg    ServerConfig
	pub    ed25519.PublicKey
	log    *slog.Logger
	limits *partnerLimits
	seen   *evaluated
}

// NewServer checks cfg and returns a server.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Agency == "":
		return nil, errors.New("new exchange server: no agency")
	case cfg.Signer == nil || cfg.Keys == nil || cfg.Admitter == nil || cfg.Responders == nil:
		return nil, errors.New("new exchange server: signer, keys, admitter and responders are required")
	case cfg.Sets != nil && (cfg.SyncAuthorizer == nil || cfg.SyncAuditor == nil):
		return nil, errors.New("new exchange server: sets need a sync authorizer and auditor")
	case cfg.MaxBatch < 0 || cfg.MaxBatch > MaxBatch:
		return nil, fmt.Errorf("new exchange server: max batch %d (want 0 to %d)", cfg.MaxBatch, MaxBatch)
	case cfg.RefusalBurst < 0 || cfg.RefusalRate < 0 || cfg.MaxInFlight < 0:
		return nil, errors.New("new exchange server: negative refusal burst, refusal rate or requests in flight")
	}
	pub, ok := cfg.Signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("new exchange server: signer is not an ed25519 key")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, pub: pub, log: log.With("component", "exchange"),
		limits: newPartnerLimits(cfg.RefusalBurst, cfg.RefusalRate, cfg.MaxInFlight), seen: newEvaluated(cfg.MaxSkew)}, nil
}

// Handle serves one stream of proto from an admitted peer: ProtoMatch or
// ProtoSync; a stream of any other protocol is reset. It returns when the
// stream is done; the caller closes it.
func (s *Server) Handle(ctx context.Context, from Peer, proto string, st Stream) {
	switch proto {
	case ProtoMatch:
		s.HandleMatch(ctx, from, st)
	case ProtoSync:
		s.HandleSync(ctx, from, st)
	default:
		_ = st.Reset()
	}
}

// deadline sets the stream's deadline and returns a context bounded by it.
func (s *Server) deadline(ctx context.Context, st Stream) (context.Context, context.CancelFunc, error) {
	d := time.Now().Add(s.cfg.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	if err := st.SetDeadline(d); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithDeadline(ctx, d)
	return ctx, cancel, nil
}

func (s *Server) sign(msg []byte) ([]byte, error) {
	sig, err := s.cfg.Signer.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// fresh reports whether t lies within MaxSkew of now.
func fresh(t, now time.Time, skew time.Duration) bool {
	d := now.Sub(t)
	return d <= skew && d >= -skew
}

func unixMs(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

func fromUnixMs(ms uint64) time.Time {
	if ms > 1<<62 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

// readRequest reads one request frame of at most limit bytes from st and
// decodes it. Bytes that do not frame or decode are hostile: it logs the
// refusal (without the bytes), resets the stream and reports false.
func readRequest[T any](st Stream, limit int, decode func([]byte) (T, error), log *slog.Logger, what string) (T, bool) {
	var m T
	b, err := wire.ReadFrame(wire.NewReader(st), limit)
	if err == nil {
		m, err = decode(b)
	}
	if err != nil {
		log.Warn(what+" request refused", "err", err)
		_ = st.Reset()
		return m, false
	}
	return m, true
}

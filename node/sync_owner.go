package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// servedSets gives the segments of this replica's built sets (sets.go).
type servedSets interface {
	Holding(ctx context.Context, kind string, epoch uint64) (*exchange.Holding, error)
}

// ownCard gives the agency's newest signed card.
type ownCard interface {
	OwnCard() (*card.Card, error)
}

// syncOwner is the owner's side of sync, as the exchange server uses it:
// it serves this replica's built sets and the agency's card
// (exchange.Sets), lets a partner sync the kinds policy allows
// (exchange.SyncAuthorizer) and records every served or refused sync on
// the audit ledger (exchange.SyncAuditor). It holds no state and starts no
// goroutines.
type syncOwner struct {
	sets    servedSets
	card    ownCard
	policy  policyReader
	now     func() time.Time
	audit   *raftGroup
	replica string
	met     *syncMetrics // bytes out
	log     *slog.Logger
}

var (
	_ exchange.Sets           = (*syncOwner)(nil)
	_ exchange.SyncAuthorizer = (*syncOwner)(nil)
	_ exchange.SyncAuditor    = (*syncOwner)(nil)
)

// Holding returns the segments of (kind, epoch) whose digests are on the
// ledger, or exchange.ErrNoSet.
func (o *syncOwner) Holding(ctx context.Context, kind string, epoch uint64) (*exchange.Holding, error) {
	return o.sets.Holding(ctx, kind, epoch)
}

// Card returns the agency's newest signed card.
func (o *syncOwner) Card(ctx context.Context) ([]byte, error) {
	c, err := o.card.OwnCard()
	if err != nil {
		return nil, err
	}
	return c.Encode()
}

// AllowSync allows a partner the kinds policy lets it sync (action sync).
func (o *syncOwner) AllowSync(ctx context.Context, partner exchange.Peer, kind string) error {
	d := o.policy.Policy().Decide(policy.Request{Principal: policy.Principal{Agency: partner.Agency}, Action: "sync",
		Kind: kind, Time: o.now().UTC()})
	if d.Allow {
		return nil
	}
	r := exchange.ReasonNotPermitted
	if len(d.Reasons) > 0 && exchange.Reason(d.Reasons[0].ID).Valid() {
		r = exchange.Reason(d.Reasons[0].ID)
	}
	return exchange.Deny(r)
}

// Synced appends a sync entry (partner, kind, epoch, newest version,
// segments, digest of the segments' digests) before anything is sent.
func (o *syncOwner) Synced(ctx context.Context, s *exchange.Served) error {
	h := sha256.New()
	for _, d := range s.Digests {
		h.Write(d[:])
	}
	var dg ledger.Digest
	copy(dg[:], h.Sum(nil))
	_, err := o.audit.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeSync,
		RequestID: hex.EncodeToString(s.ID[:]), Partner: s.Peer.Agency, Kind: s.Kind, Epoch: s.Epoch,
		SetVersion: uint64(s.To), Count: uint64(s.Segments), PaddedSize: uint64(s.Bytes), Outcome: ledger.OutcomeOK,
		Replica: o.replica, Digest: dg}, Body: ledger.Body{Purpose: "sync served"}})
	if err == nil {
		o.met.bytes.WithLabelValues("out", s.Peer.Agency).Add(float64(s.Bytes))
	}
	return err
}

// SyncRefused appends a denial entry for a refused sync.
func (o *syncOwner) SyncRefused(ctx context.Context, s *exchange.Served, r exchange.Reason) {
	_, err := o.audit.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeDenial,
		RequestID: hex.EncodeToString(s.ID[:]), Partner: s.Peer.Agency, Kind: s.Kind, Epoch: s.Epoch,
		Outcome: ledger.OutcomeDenied, Replica: o.replica},
		Body: ledger.Body{Purpose: "sync refused: " + string(r)}})
	if err != nil {
		o.log.Warn("record refused sync", "partner", s.Peer.Agency, "err", err)
	}
}

// syncOwnerConfig is what newSyncOwner builds the owner's side from.
type syncOwnerConfig struct {
	Sets    servedSets
	Card    ownCard
	Policy  policyReader
	Now     func() time.Time // nil: time.Now
	Audit   *raftGroup
	Replica string
	Metrics *syncMetrics
	Logger  *slog.Logger // nil: discard
}

func newSyncOwner(c syncOwnerConfig) *syncOwner {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &syncOwner{sets: c.Sets, card: c.Card, policy: c.Policy, now: now, audit: c.Audit, replica: c.Replica,
		met: c.Metrics, log: log.With("component", "sync")}
}

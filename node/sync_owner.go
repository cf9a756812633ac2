package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// servedSets gives the segments of this replica's built sets (sets.go).
type servedSets interface {
	Holding(ctx context.Context, kind string, epoch uint64, reach string) (*exchange.Holding, error)
}

// ownCard gives the agency's newest signed card.
type ownCard interface {
	OwnCard() (*card.Card, error)
}

// syncOwner is the owner's side of sync, as the exchange server uses it:
// it serves this replica's built sets and the agency's card
// (exchange.Sets), lets a partner sync the kinds policy allows
// (exchange.SyncAuthorizer) and records on the audit ledger what moved
// (exchange.SyncAuditor): a transfer, or a refusal for a
// reason not recorded before. It holds only the refusals it recorded, and
// starts no goroutines.
type syncOwner struct {
	sets    servedSets
	card    ownCard
	policy  policyReader
	now     func() time.Time
	audit   *raftGroup
	replica string
	met     *syncMetrics // bytes out
	log     *slog.Logger

	mu      sync.Mutex
	refused map[string]struct{} // refusalCommandID of refusals recorded
}

var (
	_ exchange.Sets           = (*syncOwner)(nil)
	_ exchange.SyncAuthorizer = (*syncOwner)(nil)
	_ exchange.SyncAuditor    = (*syncOwner)(nil)
)

// Holding returns the segments of (kind, epoch, reach) whose digests are
// on the ledger, or exchange.ErrNoSet.
func (o *syncOwner) Holding(ctx context.Context, kind string, epoch uint64, reach string) (*exchange.Holding, error) {
	return o.sets.Holding(ctx, kind, epoch, reach)
}

// Card returns the agency's newest signed card.
func (o *syncOwner) Card(ctx context.Context) ([]byte, error) {
	c, err := o.card.OwnCard()
	if err != nil {
		return nil, err
	}
	return c.Encode()
}

// AllowSync allows a partner the kinds policy lets it sync (action sync),
// and of those the victim and witness sets only when its safeguarding
// queries may reach them (reach_not_allowed otherwise; docs/victims.md).
func (o *syncOwner) AllowSync(ctx context.Context, partner exchange.Peer, kind, reach string) error {
	d := o.policy.Policy().Decide(policy.Request{Principal: policy.Principal{Agency: partner.Agency}, Action: "sync",
		Kind: kind, Time: o.now().UTC(), Context: policy.Context{Reaches: []string{reach}}})
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
// segments, digest of the segments' digests) before anything is sent, when
// a base or a delta is sent: one entry per partner, kind, epoch and newest
// version (command ID syncCommandID), whichever replica serves it and
// however often. A sync that sends nothing (the partner's copy is current)
// writes nothing.
func (o *syncOwner) Synced(ctx context.Context, s *exchange.Served) error {
	if s.Segments == 0 {
		return nil
	}
	h := sha256.New()
	for _, d := range s.Digests {
		h.Write(d[:])
	}
	var dg ledger.Digest
	copy(dg[:], h.Sum(nil))
	ctx = ledger.WithCommandID(ledger.FailFast(ctx), syncCommandID(s.Peer.Agency, kindReach(s.Kind, s.Reach), s.Epoch, s.To))
	_, err := o.audit.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeSync,
		RequestID: hex.EncodeToString(s.ID[:]), Partner: s.Peer.Agency, Kind: s.Kind, Epoch: s.Epoch,
		SetVersion: uint64(s.To), Count: uint64(s.Segments), PaddedSize: uint64(s.Bytes), Outcome: ledger.OutcomeOK,
		Replica: o.replica, Digest: dg, Reaches: s.Reach}, Body: ledger.Body{Purpose: "sync served"}})
	if err == nil {
		o.met.bytes.WithLabelValues("out", s.Peer.Agency).Add(float64(s.Bytes))
	}
	return err
}

// syncCommandID names the sync entry of (partner, kind and reach
// (kindReach), epoch, version).
func syncCommandID(partner, kind string, epoch uint64, version uint32) string {
	return fmt.Sprintf("sync/%s/%s/%d/%d", partner, kind, epoch, version)
}

// refusalCommandID names the denial entry of a refused sync: one per
// partner, kind and reason under the policy in force.
func refusalCommandID(partner, kind string, r exchange.Reason, policyVersion string) string {
	return fmt.Sprintf("sync-refused/%s/%s/%s/%s", partner, kind, r, policyVersion)
}

// SyncRefused appends a denial entry for a refused sync, when the partner
// was not refused that kind for that reason under the policy in force
// before (by any replica: the command ID is the same on all). An error
// (wrapping exchange.ErrUnavailable) means this replica cannot record now
// (ledger.Quorum, checked even for a refusal recorded before): the server
// answers "unavailable", never a denial while it cannot record one.
func (o *syncOwner) SyncRefused(ctx context.Context, s *exchange.Served, r exchange.Reason) error {
	if err := o.audit.Quorum(); err != nil {
		return fmt.Errorf("record refused sync: %w: %w", exchange.ErrUnavailable, err)
	}
	// A kind that is no identifier kind, or that nothing authenticates, is
	// recorded as none: a partner cannot have one entry written per string.
	kind, reach := metricKind(s.Kind), s.Reach
	if kind == "other" || r == exchange.ReasonBadSignature || r == exchange.ReasonWrongPeer {
		kind = ""
	}
	if kind == "" || !exchange.ValidReach(reach) {
		reach = ""
	}
	id := refusalCommandID(s.Peer.Agency, kindReach(kind, orOpen(reach)), r, o.policy.Policy().Version())
	o.mu.Lock()
	_, seen := o.refused[id]
	o.mu.Unlock()
	if seen {
		return nil
	}
	_, err := o.audit.Append(ledger.WithCommandID(ledger.FailFast(ctx), id), ledger.Entry{Header: ledger.Header{Type: ledger.TypeDenial,
		RequestID: hex.EncodeToString(s.ID[:]), Partner: s.Peer.Agency, Kind: kind, Epoch: s.Epoch,
		Outcome: ledger.OutcomeDenied, Replica: o.replica, Reaches: reach},
		Body: ledger.Body{Purpose: "sync refused: " + string(r)}})
	if err != nil {
		return fmt.Errorf("record refused sync: %w: %w", exchange.ErrUnavailable, err)
	}
	o.mu.Lock()
	if len(o.refused) >= maxRefusalsKept {
		clear(o.refused)
	}
	o.refused[id] = struct{}{}
	o.mu.Unlock()
	return nil
}

// orOpen is reach, or open when empty.
func orOpen(reach string) string {
	if reach == "" {
		return reachOpen
	}
	return reach
}

// maxRefusalsKept bounds the refusals a syncOwner remembers to spare the
// ledger a write; past it they are forgotten, and the ledger's command IDs
// still keep a repeated refusal from being recorded twice.
const maxRefusalsKept = 4096

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
		met: c.Metrics, log: log.With("component", "sync"), refused: map[string]struct{}{}}
}

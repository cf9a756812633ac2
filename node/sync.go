package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/psi"
)

// PartnersDir is the replica's local store of partners' encoded sets
// (badger, encrypted with the storage key): the verified segments of each
// (partner, kind, epoch), from which the set is rebuilt at start.
const PartnersDir = "partners"

// DefaultSyncInterval is how often partners' sets are synced in the
// background, and how old a copy may be before a query syncs it first.
const DefaultSyncInterval = time.Minute

// syncMetrics are the metrics of sync, both sides.
type syncMetrics struct {
	pversion *prometheus.GaugeVec   // partner set version held, by partner and kind
	lag      *prometheus.GaugeVec   // seconds since the last successful sync, by partner and kind
	bytes    *prometheus.CounterVec // set bytes synced, by direction and partner
}

func newSyncMetrics(reg *prometheus.Registry) *syncMetrics {
	m := &syncMetrics{
		pversion: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_partner_set_version",
			Help: "Version of a partner's encoded set held, per partner and kind."}, []string{"partner", "kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_partner_sync_lag_seconds",
			Help: "Seconds since a partner's set was last synced, per partner and kind."}, []string{"partner", "kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xborder_sync_bytes_total",
			Help: "Encoded set bytes synced, by direction (in, out) and partner."}, []string{"direction", "partner"}),
	}
	if reg != nil {
		reg.MustRegister(m.pversion, m.lag, m.bytes)
	}
	return m
}

// ---- querier side: exchange.Cards and partners' sets ----

// cardPins is what the card checker needs of the pins: the card pinned
// for an agency, and pinning a newer one.
type cardPins interface {
	pinned(agency string) (*card.Card, bool)
	PinCard(ctx context.Context, actor string, c *card.Card, fingerprint string) (httpapi.Partner, error)
}

// cardChecker checks the cards owners send with their sets against the
// pins (exchange.Cards): a newer card signed by the same agency key
// replaces the pinned one. It holds no state and starts no goroutines.
type cardChecker struct {
	pins cardPins
	now  func() time.Time
}

var _ exchange.Cards = (*cardChecker)(nil)

// newCardChecker builds a checker on pins at the clock now (nil:
// time.Now).
func newCardChecker(pins cardPins, now func() time.Time) *cardChecker {
	if now == nil {
		now = time.Now
	}
	return &cardChecker{pins: pins, now: now}
}

// Check decodes and verifies an owner's card at this node's clock and
// accepts it when it is the pinned card or replaces it (same agency key,
// higher sequence), in which case it is pinned as `partner add` would.
// Every replica of an agency signs the agency's card itself, with a
// sequence from its own clock, so the replicas' cards differ in sequence:
// a card of the same agency key that is not newer than the pin (another
// replica's, or one that lags) is accepted too, but the pinned card stays
// and its epoch keys are the ones returned, so nothing older than the pin
// is trusted.
func (c *cardChecker) Check(ctx context.Context, agency string, b []byte) ([]exchange.EpochKey, error) {
	next, err := card.Decode(b)
	if err != nil {
		return nil, err
	}
	if err := next.Verify(c.now()); err != nil {
		return nil, err
	}
	pinned, ok := c.pins.pinned(agency)
	if !ok {
		return nil, fmt.Errorf("check card of %s: %w", agency, ErrNotPinned)
	}
	pb, err := pinned.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pb, b) {
		switch err := card.Replaces(pinned, next); {
		case errors.Is(err, card.ErrNotNewer):
			next = pinned
		case err != nil:
			return nil, err
		default:
			if _, err := c.pins.PinCard(ctx, "sync", next, ""); err != nil {
				// Another sync (another kind of the partner's, say) may have
				// pinned this card, or a newer one, since the pin was read:
				// the pin in force is then at least as new; use it.
				inForce, ok := c.pins.pinned(agency)
				if !errors.Is(err, card.ErrNotNewer) || !ok || inForce.Sequence < next.Sequence {
					return nil, fmt.Errorf("re-pin card of %s: %w", agency, err)
				}
				next = inForce
			}
		}
	}
	out := make([]exchange.EpochKey, 0, len(next.EpochKeys))
	for _, k := range next.EpochKeys {
		out = append(out, exchange.EpochKey{Kind: k.Kind, Epoch: k.Epoch, Reach: k.Reach, Key: k.Key})
	}
	return out, nil
}

// partnerCopy is this replica's copy of one partner's set of one kind and
// reach.
type partnerCopy struct {
	mu     sync.Mutex // serialises syncs of this copy
	epoch  uint64
	set    *psi.Set
	key    *psi.PublicKey
	synced time.Time
}

// syncReplicas asks a partner's replicas in turn (*replicaOrder), as
// matchReplicas does for the querier.
type syncReplicas interface {
	ask(ctx context.Context, c *card.Card, passes int, try func(exchange.PeerID) error) error
}

// syncClient asks a partner's replica for its set (an *exchange.Client).
type syncClient interface {
	Sync(ctx context.Context, o exchange.Opener, peer exchange.PeerID, q exchange.SyncQuery) (*exchange.Synced, error)
}

// partnerPins gives the pinned partners' cards in force (by agency code).
type partnerPins interface {
	Pins() map[string]*card.Card
}

// partnerSets is this replica's copies of its partners' encoded sets, one
// per (partner, kind, reach) (the victim and witness sets only of partners
// that let this agency's safeguarding queries reach them), kept in the local store PartnersDir and synced from
// any replica of the partner: in the background every sync interval, and
// before a query when the copy is missing, old or of an older epoch. Its
// goroutine (the sync loop) runs from Start until Close; Close also
// closes its store.
type partnerSets struct {
	db       *badger.DB
	client   syncClient
	opener   exchange.Opener
	order    syncReplicas
	pins     partnerPins
	policy   policyReader
	leader   func() bool
	interval time.Duration
	log      *slog.Logger
	met      *syncMetrics

	mu      sync.Mutex
	copies  map[string]*partnerCopy // partner/kindReach
	refused map[string]*refusal     // partner/kindReach: the owner's last refusal
	passes  atomic.Int64            // background passes that polled (tests)
	skipped atomic.Int64            // background passes skipped, not leading (tests)
	stop    chan struct{}
	wg      sync.WaitGroup
}

// partnerSetsConfig is what openPartnerSets builds the copies from.
type partnerSetsConfig struct {
	Dir    string // the local store, made if missing
	Key    []byte // the storage key that encrypts it
	Client syncClient
	Opener exchange.Opener // streams to partners' replicas
	// Order is which replica of a partner to ask first. Nil: a
	// replicaOrder of this copy's own.
	Order syncReplicas
	Pins  partnerPins
	// Policy gives the kinds the agreement with each partner covers
	// (policy.Set.PartnerKinds): only those are polled in the background.
	Policy policyReader
	// Leader reports whether this replica leads the audit group: only the
	// leader polls in the background (the others sync before a query).
	// Nil: this replica polls.
	Leader func() bool
	// Interval is how often partners' sets are synced in the background,
	// and how old a copy may be before a query syncs it first. Zero:
	// DefaultSyncInterval.
	Interval time.Duration
	Logger   *slog.Logger // nil: discard
	Metrics  *syncMetrics
}

// openPartnerSets opens the local store and rebuilds the copies from the
// segments it holds.
func openPartnerSets(c partnerSetsConfig) (*partnerSets, error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultSyncInterval
	}
	db, err := openLocal(c.Dir, c.Key)
	if err != nil {
		return nil, err
	}
	order := c.Order
	if order == nil {
		order = newReplicaOrder(nil)
	}
	ps := &partnerSets{db: db, client: c.Client, opener: c.Opener, order: order, pins: c.Pins, policy: c.Policy, leader: c.Leader,
		interval: interval, log: log.With("component", "partners"), met: c.Metrics, copies: map[string]*partnerCopy{},
		refused: map[string]*refusal{}, stop: make(chan struct{})}
	if err := ps.load(); err != nil {
		db.Close()
		return nil, err
	}
	return ps, nil
}

// Start starts the sync loop.
func (ps *partnerSets) Start() {
	ps.wg.Add(1)
	go ps.syncLoop()
}

// Close stops the sync loop, waits for it and closes the store. A nil
// *partnerSets (never opened) closes as nothing.
func (ps *partnerSets) Close() error {
	if ps == nil {
		return nil
	}
	close(ps.stop)
	ps.wg.Wait()
	if err := ps.db.Close(); err != nil {
		return fmt.Errorf("close local store: %w", err)
	}
	return nil
}

// load rebuilds the copies from the stored segments: base first, then
// deltas.
func (ps *partnerSets) load() error {
	return ps.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("seg/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			parts := strings.Split(string(it.Item().Key()), "/")
			if len(parts) != 5 {
				continue
			}
			var epoch uint64
			fmt.Sscan(parts[3], &epoch)
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			kind, reach := splitKindReach(parts[2])
			pc := ps.partnerCopy(parts[1], kind, reach)
			if err := pc.add(epoch, b); err != nil {
				ps.log.Warn("stored partner set dropped", "partner", parts[1], "kind", kind, "reach", reach, "err", err)
				pc.set, pc.key = nil, nil
			}
		}
		return nil
	})
}

// add applies a stored segment to the copy (a base replaces it).
func (pc *partnerCopy) add(epoch uint64, b []byte) error {
	if es, err := psi.UnmarshalEncodedSet(b); err == nil {
		s, err := psi.NewSet(es)
		if err != nil {
			return err
		}
		pc.set, pc.key, pc.epoch = s, es.Key(), epoch
		return nil
	}
	d, err := psi.UnmarshalDelta(b)
	if err != nil {
		return err
	}
	if pc.set == nil || pc.epoch != epoch {
		return errors.New("delta without its base")
	}
	return pc.set.Apply(d)
}

// kindReach names the set of (kind, reach) in keys: the kind alone for
// the open reach (the keys of the sets before reaches), "<kind>.<reach>"
// for another.
func kindReach(kind, reach string) string {
	if reach != reachOpen {
		return kind + "." + reach
	}
	return kind
}

// splitKindReach undoes kindReach.
func splitKindReach(s string) (kind, reach string) {
	if k, r, ok := strings.Cut(s, "."); ok {
		return k, r
	}
	return s, reachOpen
}

func (ps *partnerSets) partnerCopy(partner, kind, reach string) *partnerCopy {
	key := partner + "/" + kindReach(kind, reach)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pc := ps.copies[key]
	if pc == nil {
		pc = &partnerCopy{}
		ps.copies[key] = pc
	}
	return pc
}

// partnerSet returns the copy of partner's set of (kind, reach), syncing
// first when it is missing, older than the sync interval, or of an epoch other than
// the newest the partner's card lists. fresh is false when the sync
// failed and an older copy is returned (the caller answers "stale").
func (ps *partnerSets) partnerSet(ctx context.Context, partner, kind, reach string) (s *psi.Set, key *psi.PublicKey, epoch uint64, fresh bool, err error) {
	pc := ps.partnerCopy(partner, kind, reach)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	newest := ps.partnerEpochs(partner, kind)
	if pc.set != nil && time.Since(pc.synced) < ps.interval && len(newest) > 0 && newest[0] == pc.epoch {
		return pc.set, pc.key, pc.epoch, true, nil
	}
	err = ps.syncCopy(ctx, partner, kind, reach, pc, replicaPasses)
	ps.noteRefusal(partner, kind, reach, err)
	if err != nil {
		if pc.set != nil {
			ps.log.Warn("partner set not synced; the copy held answers, as stale", "partner", partner, "kind", kind, "reach", reach,
				"version", pc.set.Version(), "err", err)
			return pc.set, pc.key, pc.epoch, false, nil
		}
		return nil, nil, 0, false, err
	}
	return pc.set, pc.key, pc.epoch, true, nil
}

// partnerEpochs lists the epochs the pinned card of partner has a key of
// kind for, newest first.
func (ps *partnerSets) partnerEpochs(partner, kind string) []uint64 {
	c, ok := ps.pins.Pins()[partner]
	if !ok {
		return nil
	}
	var es []uint64
	for _, k := range c.EpochKeys {
		if k.Kind == kind {
			es = append(es, k.Epoch)
		}
	}
	slices.Sort(es)
	slices.Reverse(es)
	return es
}

// maxEpochsAhead bounds how many epochs past the newest its pinned card
// lists syncCopy asks a partner for, while the partner answers each
// earlier one unknown_epoch.
const maxEpochsAhead = 8

// syncCopy syncs pc from any replica of partner: the newest epoch on its
// card that it serves, trying each replica in turn, in the order
// replicaOrder gives (a stopped one, or one without quorum, is skipped and
// the next one resumes from what pc holds). While every replica answers
// "unavailable" it asks them again, up to passes rounds for the newest
// epoch: a query waits out an election (replicaPasses), the background
// loop does not (1). The caller holds pc.mu.
func (ps *partnerSets) syncCopy(ctx context.Context, partner, kind, reach string, pc *partnerCopy, passes int) error {
	c, ok := ps.pins.Pins()[partner]
	if !ok {
		return fmt.Errorf("sync %s %s: %w", partner, kind, ErrNotPinned)
	}
	epochs := ps.partnerEpochs(partner, kind)
	if len(epochs) == 0 {
		return fmt.Errorf("sync %s %s: the partner's card lists no key of that kind: %w", partner, kind, exchange.ErrNoSet)
	}
	// Epochs follow each other: when the partner has retired every epoch
	// the pinned card lists (each answered unknown_epoch), the next ones
	// are asked for in turn, up to maxEpochsAhead past the card's newest (a
	// partner may have rotated more than once since the last sync), and the
	// first answer brings the newer card that lists its key. Not when an
	// epoch could not be served now (unavailable): the next epoch would
	// only be refused, and the refusal recorded.
	known := len(epochs)
	for e := epochs[0] + 1; e <= epochs[0]+maxEpochsAhead; e++ {
		epochs = append(epochs, e)
	}
	retired := true
	var errs []error
	for i, e := range epochs {
		if i >= known && !retired {
			break
		}
		var have *psi.Set
		if pc.set != nil && pc.epoch == e {
			have = pc.set
		}
		// A replica that cannot serve (unavailable) makes the next one
		// asked; a denial or an answer that does not verify is the owner's,
		// not the replica's state: no other replica will differ. Only the
		// newest epoch is worth waiting for.
		rounds := 1
		if i == 0 {
			rounds = passes
		}
		var got *exchange.Synced
		err := ps.order.ask(ctx, c, rounds, func(peer exchange.PeerID) error {
			var err error
			got, err = ps.client.Sync(ctx, ps.opener, peer, exchange.SyncQuery{Owner: partner, Kind: kind, Reach: reach, Epoch: e, Have: have})
			ps.logReceived(partner, kind, reach, e, peer, got, err)
			return err
		})
		if err == nil {
			if err := ps.storeSynced(partner, kind, reach, e, pc, got); err != nil {
				return fmt.Errorf("sync %s %s: %w", partner, kind, err)
			}
			return nil
		}
		errs = append(errs, err)
		var d *exchange.DeniedError
		if errors.As(err, &d) && d.Reason != exchange.ReasonUnknownEpoch {
			return err // the owner's policy: no epoch, no replica will differ
		}
		retired = retired && errors.As(err, &d)
		if ctx.Err() != nil {
			break
		}
	}
	// The newest epoch asked decides: once it could not be served now
	// (unavailable), an older epoch's unknown_epoch is no answer, and must
	// not read as the partner's refusal.
	var d *exchange.DeniedError
	if n := len(errs); n > 1 && !errors.As(errs[n-1], &d) {
		return fmt.Errorf("%w (older epochs: %v)", errs[n-1], errors.Join(errs[:n-1]...))
	}
	return errors.Join(errs...)
}

// storeSynced keeps the verified segments and updates the copy.
func (ps *partnerSets) storeSynced(partner, kind, reach string, epoch uint64, pc *partnerCopy, got *exchange.Synced) error {
	pfx := fmt.Sprintf("seg/%s/%s/", partner, kindReach(kind, reach))
	newBase := got.Key != nil
	size := 0
	err := ps.db.Update(func(txn *badger.Txn) error {
		if newBase {
			// A new base (or epoch) replaces everything held of this kind.
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfx)})
			var old [][]byte
			for it.Rewind(); it.Valid(); it.Next() {
				old = append(old, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range old {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		for _, sg := range got.Segments {
			size += len(sg.Data)
			k := fmt.Sprintf("%s%020d/%010d", pfx, epoch, sg.Version)
			if err := txn.Set([]byte(k), sg.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store partner set: %w", err)
	}
	pc.set, pc.epoch, pc.synced = got.Set, epoch, time.Now()
	if newBase {
		pc.key = got.Key
	}
	ps.met.bytes.WithLabelValues("in", partner).Add(float64(size))
	if reach == reachOpen {
		ps.met.pversion.WithLabelValues(partner, kind).Set(float64(pc.set.Version()))
		ps.met.lag.WithLabelValues(partner, kind).Set(0)
	}
	return nil
}

// expireCopy makes the next partnerSet of (partner, kind, reach) sync
// first: the partner answered from a newer set version or epoch than our
// copy.
func (ps *partnerSets) expireCopy(partner, kind, reach string) {
	pc := ps.partnerCopy(partner, kind, reach)
	pc.mu.Lock()
	pc.synced = time.Time{}
	pc.mu.Unlock()
}

package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
	"github.com/xborder/xborder/psi"
)

// PartnersDir is the replica's local store of partners' encoded sets
// (badger, encrypted with the storage key): the verified segments of each
// (partner, kind, epoch), from which the set is rebuilt at start.
const PartnersDir = "partners"

// DefaultSyncInterval is how often partners' sets are synced in the
// background, and how old a copy may be before a query syncs it first.
const DefaultSyncInterval = time.Minute

// holdingMetrics are the metrics of holdings, precompute and sync.
type holdingMetrics struct {
	holdings *prometheus.GaugeVec   // identifiers in the newest build, by kind
	progress *prometheus.GaugeVec   // fraction of the running build done, by kind
	computed *prometheus.CounterVec // PRF outputs computed, by kind
	rate     *prometheus.GaugeVec   // outputs per second of the last build, by kind
	version  *prometheus.GaugeVec   // set version built, by kind and epoch
	full     *prometheus.GaugeVec   // 1 when a set is at psi's largest size, by kind and epoch
	pversion *prometheus.GaugeVec   // partner set version held, by partner and kind
	lag      *prometheus.GaugeVec   // seconds since the last successful sync, by partner and kind
	bytes    *prometheus.CounterVec // set bytes synced, by direction and partner
}

func newHoldingMetrics(reg *prometheus.Registry) *holdingMetrics {
	m := &holdingMetrics{
		holdings: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_holdings",
			Help: "Identifiers held per kind, as of the newest set build."}, []string{"kind"}),
		progress: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_precompute_progress",
			Help: "Fraction (0 to 1) of the running or last set build done, per kind."}, []string{"kind"}),
		computed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xborder_precompute_outputs_total",
			Help: "PRF outputs computed for encoded sets, per kind."}, []string{"kind"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_precompute_rate",
			Help: "Identifiers per second of the last set build, per kind."}, []string{"kind"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_set_version",
			Help: "Encoded set version built by this replica, per kind and epoch."}, []string{"kind", "epoch"}),
		full: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_set_full",
			Help: "1 when this replica's encoded set of a kind and epoch is at psi's largest size (even a new base cannot hold more): the versions imported since are not in it."}, []string{"kind", "epoch"}),
		pversion: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_partner_set_version",
			Help: "Version of a partner's encoded set held, per partner and kind."}, []string{"partner", "kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_partner_sync_lag_seconds",
			Help: "Seconds since a partner's set was last synced, per partner and kind."}, []string{"partner", "kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xborder_sync_bytes_total",
			Help: "Encoded set bytes synced, by direction (in, out) and partner."}, []string{"direction", "partner"}),
	}
	reg.MustRegister(m.holdings, m.progress, m.computed, m.rate, m.version, m.full, m.pversion, m.lag, m.bytes)
	return m
}

// ---- owner side: exchange.Sets, SyncAuthorizer, SyncAuditor ----

// holdingSets adapts the node's built sets and card to exchange.Sets.
type holdingSets Node

// Holding returns the segments of (kind, epoch) whose digests are on the
// ledger, or exchange.ErrNoSet.
func (h *holdingSets) Holding(ctx context.Context, kind string, epoch uint64) (*exchange.Holding, error) {
	n := (*Node)(h)
	ls := n.sets.get(kind, epoch)
	if ls == nil {
		return nil, fmt.Errorf("holding %s epoch %d: %w", kind, epoch, exchange.ErrNoSet)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	base, segs, ok := ls.served()
	if ls.bad || !ok {
		return nil, fmt.Errorf("holding %s epoch %d: %w", kind, epoch, exchange.ErrNoSet)
	}
	return &exchange.Holding{Base: uint32(base + 1), Segments: segs}, nil
}

// Card returns the agency's newest signed card.
func (h *holdingSets) Card(ctx context.Context) ([]byte, error) {
	c, err := (*Node)(h).OwnCard()
	if err != nil {
		return nil, err
	}
	return c.Encode()
}

// syncAuth adapts the policy in force to exchange.SyncAuthorizer.
type syncAuth Node

// AllowSync allows a partner the kinds policy lets it sync (action sync).
func (a *syncAuth) AllowSync(ctx context.Context, partner exchange.Peer, kind string) error {
	n := (*Node)(a)
	d := n.Policy().Decide(policy.Request{Principal: policy.Principal{Agency: partner.Agency}, Action: "sync",
		Kind: kind, Time: n.now().UTC()})
	if d.Allow {
		return nil
	}
	r := exchange.ReasonNotPermitted
	if len(d.Reasons) > 0 && exchange.Reason(d.Reasons[0].ID).Valid() {
		r = exchange.Reason(d.Reasons[0].ID)
	}
	return exchange.Deny(r)
}

// syncAudit records served and refused syncs on the audit ledger.
type syncAudit Node

// Synced appends a sync entry (partner, kind, epoch, newest version,
// segments, digest of the segments' digests) before anything is sent.
func (a *syncAudit) Synced(ctx context.Context, s *exchange.Served) error {
	n := (*Node)(a)
	h := sha256.New()
	for _, d := range s.Digests {
		h.Write(d[:])
	}
	var dg ledger.Digest
	copy(dg[:], h.Sum(nil))
	_, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeSync,
			RequestID: hex.EncodeToString(s.ID[:]), Partner: s.Peer.Agency, Kind: s.Kind, Epoch: s.Epoch,
			SetVersion: uint64(s.To), Count: uint64(s.Segments), PaddedSize: uint64(s.Bytes), Outcome: ledger.OutcomeOK,
			Replica: n.fc.ReplicaID(), Digest: dg}, Body: ledger.Body{Purpose: "sync served"}})
	})
	if err == nil {
		n.hmet.bytes.WithLabelValues("out", s.Peer.Agency).Add(float64(s.Bytes))
	}
	return err
}

// SyncRefused appends a denial entry for a refused sync.
func (a *syncAudit) SyncRefused(ctx context.Context, s *exchange.Served, r exchange.Reason) {
	n := (*Node)(a)
	_, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeDenial,
			RequestID: hex.EncodeToString(s.ID[:]), Partner: s.Peer.Agency, Kind: s.Kind, Epoch: s.Epoch,
			Outcome: ledger.OutcomeDenied, Replica: n.fc.ReplicaID()},
			Body: ledger.Body{Purpose: "sync refused: " + string(r)}})
	})
	if err != nil {
		n.log.Warn("record refused sync", "partner", s.Peer.Agency, "err", err)
	}
}

// ---- querier side: exchange.Cards and partners' sets ----

// cardChecker adapts the pins to exchange.Cards.
type cardChecker Node

// Check decodes and verifies an owner's card at this node's clock and
// accepts it when it is the pinned card or replaces it (same agency key,
// higher sequence), in which case it is pinned as `partner add` would.
func (c *cardChecker) Check(ctx context.Context, agency string, b []byte) ([]exchange.EpochKey, error) {
	n := (*Node)(c)
	next, err := card.Decode(b)
	if err != nil {
		return nil, err
	}
	if err := next.Verify(n.now()); err != nil {
		return nil, err
	}
	pinned, ok := n.Pins()[agency]
	if !ok {
		return nil, fmt.Errorf("check card of %s: %w", agency, ErrNotPinned)
	}
	pb, err := pinned.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pb, b) {
		if err := card.Replaces(pinned, next); err != nil {
			return nil, err
		}
		if _, err := n.PinCard(ctx, "sync", next, ""); err != nil {
			return nil, fmt.Errorf("re-pin card of %s: %w", agency, err)
		}
	}
	out := make([]exchange.EpochKey, 0, len(next.EpochKeys))
	for _, k := range next.EpochKeys {
		out = append(out, exchange.EpochKey{Kind: k.Kind, Epoch: k.Epoch, Key: k.Key})
	}
	return out, nil
}

// partnerCopy is this replica's copy of one partner's set of one kind.
type partnerCopy struct {
	mu     sync.Mutex // serialises syncs of this copy
	epoch  uint64
	set    *psi.Set
	key    *psi.PublicKey
	synced time.Time
}

type partnerStore struct {
	mu     sync.Mutex
	db     *badger.DB
	copies map[string]*partnerCopy // partner/kind
}

func (n *Node) startPartners() error {
	n.partners.copies = map[string]*partnerCopy{}
	db, err := n.openLocal(PartnersDir)
	if err != nil {
		return err
	}
	n.partners.db = db
	// Rebuild the copies from the stored segments: base first, then deltas.
	return db.View(func(txn *badger.Txn) error {
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
			pc := n.partnerCopy(parts[1], parts[2])
			if err := pc.add(epoch, b); err != nil {
				n.log.Warn("stored partner set dropped", "partner", parts[1], "kind", parts[2], "err", err)
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

func (n *Node) partnerCopy(partner, kind string) *partnerCopy {
	n.partners.mu.Lock()
	defer n.partners.mu.Unlock()
	pc := n.partners.copies[partner+"/"+kind]
	if pc == nil {
		pc = &partnerCopy{}
		n.partners.copies[partner+"/"+kind] = pc
	}
	return pc
}

func (n *Node) syncInterval() time.Duration {
	if n.cfg.SyncInterval > 0 {
		return n.cfg.SyncInterval
	}
	return DefaultSyncInterval
}

// partnerSet returns the copy of partner's set of kind, syncing first when
// it is missing, older than the sync interval, or of an epoch other than
// the newest the partner's card lists. fresh is false when the sync
// failed and an older copy is returned (the caller answers "stale").
func (n *Node) partnerSet(ctx context.Context, partner, kind string) (s *psi.Set, key *psi.PublicKey, epoch uint64, fresh bool, err error) {
	pc := n.partnerCopy(partner, kind)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	newest := n.partnerEpochs(partner, kind)
	if pc.set != nil && time.Since(pc.synced) < n.syncInterval() && len(newest) > 0 && newest[0] == pc.epoch {
		return pc.set, pc.key, pc.epoch, true, nil
	}
	err = n.syncCopy(ctx, partner, kind, pc)
	if err != nil {
		if pc.set != nil {
			n.log.Warn("partner set not synced; the copy held answers, as stale", "partner", partner, "kind", kind,
				"version", pc.set.Version(), "err", err)
			return pc.set, pc.key, pc.epoch, false, nil
		}
		return nil, nil, 0, false, err
	}
	return pc.set, pc.key, pc.epoch, true, nil
}

// partnerEpochs lists the epochs the pinned card of partner has a key of
// kind for, newest first.
func (n *Node) partnerEpochs(partner, kind string) []uint64 {
	c, ok := n.Pins()[partner]
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

// syncCopy syncs pc from any replica of partner: the newest epoch on its
// card that it serves, trying each replica in turn (a stopped one is
// skipped and the next one resumes from what pc holds). The caller holds
// pc.mu.
func (n *Node) syncCopy(ctx context.Context, partner, kind string, pc *partnerCopy) error {
	c, ok := n.Pins()[partner]
	if !ok {
		return fmt.Errorf("sync %s %s: %w", partner, kind, ErrNotPinned)
	}
	epochs := n.partnerEpochs(partner, kind)
	if len(epochs) == 0 {
		return fmt.Errorf("sync %s %s: the partner's card lists no key of that kind: %w", partner, kind, exchange.ErrNoSet)
	}
	// Epochs follow each other: when the partner has retired every epoch
	// the pinned card lists, the next one is asked for, and its answer
	// brings the newer card that lists its key.
	epochs = append(epochs, epochs[0]+1)
	var errs []error
	for _, e := range epochs {
		var have *psi.Set
		if pc.set != nil && pc.epoch == e {
			have = pc.set
		}
		for _, rep := range c.Replicas {
			got, err := n.xcl.Sync(ctx, n.host, exchange.PeerID(rep.PeerID), exchange.SyncQuery{Owner: partner, Kind: kind, Epoch: e, Have: have})
			if err != nil {
				errs = append(errs, err)
				var d *exchange.DeniedError
				if errors.As(err, &d) || errors.Is(err, exchange.ErrVerify) || ctx.Err() != nil {
					break // the owner's answer, not the replica's state: no other replica will differ
				}
				continue
			}
			if err := n.storeSynced(partner, kind, e, pc, got); err != nil {
				return fmt.Errorf("sync %s %s: %w", partner, kind, err)
			}
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// storeSynced keeps the verified segments and updates the copy.
func (n *Node) storeSynced(partner, kind string, epoch uint64, pc *partnerCopy, got *exchange.Synced) error {
	pfx := fmt.Sprintf("seg/%s/%s/", partner, kind)
	newBase := got.Key != nil
	size := 0
	err := n.partners.db.Update(func(txn *badger.Txn) error {
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
	n.hmet.bytes.WithLabelValues("in", partner).Add(float64(size))
	n.hmet.pversion.WithLabelValues(partner, kind).Set(float64(pc.set.Version()))
	n.hmet.lag.WithLabelValues(partner, kind).Set(0)
	return nil
}

// syncLoop syncs every pinned partner's sets in the background, every
// sync interval, until stopHoldings.
func (n *Node) syncLoop() {
	defer n.hwg.Done()
	t := time.NewTicker(max(n.syncInterval(), time.Second))
	defer t.Stop()
	for {
		select {
		case <-n.hstop:
			return
		case <-t.C:
		}
		for partner, c := range n.Pins() {
			kinds := map[string]bool{}
			for _, k := range c.EpochKeys {
				kinds[k.Kind] = true
			}
			for kind := range kinds {
				ctx, cancel := context.WithTimeout(context.Background(), max(n.syncInterval(), exchange.DefaultTimeout))
				ctx, stop := n.stoppable(ctx)
				_, _, _, fresh, err := n.partnerSet(ctx, partner, kind)
				stop()
				cancel()
				if err != nil || !fresh {
					n.log.Info("background sync", "partner", partner, "kind", kind, "fresh", fresh, "err", err)
				}
				pc := n.partnerCopy(partner, kind)
				pc.mu.Lock()
				if !pc.synced.IsZero() {
					n.hmet.lag.WithLabelValues(partner, kind).Set(time.Since(pc.synced).Seconds())
				}
				pc.mu.Unlock()
			}
		}
	}
}

// stoppable returns ctx cancelled also when stopHoldings begins.
func (n *Node) stoppable(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-n.hstop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

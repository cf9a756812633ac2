package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// localSet is this replica's encoded set of one (kind, epoch, reach): the
// responder, the segments built and the set they make. Segment i is set
// version i+1: a base, then deltas; when a version does not fit in the
// room a base keeps for deltas, a new base of every version so far is
// built (rebase) and the deltas after it apply to that one.
type localSet struct {
	mu       sync.Mutex
	kind     string
	epoch    uint64
	reach    string // open, victim or witness: the rows of those classes, under that reach's key
	resp     *psi.Responder
	view     *psi.Set // the newest base and its deltas
	segments [][]byte
	digests  [][32]byte
	bases    []int // indexes of the segments that are bases, ascending; bases[0] == 0
	built    int   // manifest versions consumed
	recorded int   // segments whose digest is on the audit ledger (or skipped)
	// badAt is the newest version whose digest differs from the one on the
	// ledger (0: none): a base and deltas that reach it are never served;
	// a newer base serves again.
	badAt int
	full  bool // no room for more versions even in a new base (psi.MaxCapacity)
}

// served returns the newest base whose digest is recorded and the
// recorded segments from it, for partners; ok is false when there is none
// or this replica's bytes of it differ from the ledger's.
func (ls *localSet) served() (base int, segs [][]byte, ok bool) {
	for i := len(ls.bases) - 1; i >= 0; i-- {
		if b := ls.bases[i]; b < ls.recorded {
			if ls.badAt > b {
				return 0, nil, false
			}
			return b, slices.Clone(ls.segments[b:ls.recorded]), true
		}
	}
	return 0, nil, false
}

// skip stands for a version this replica does not build: one before a
// base by decree that it starts from (manifest.Bases).
func (ls *localSet) skip() {
	ls.segments = append(ls.segments, nil)
	ls.digests = append(ls.digests, [32]byte{})
}

// add appends a segment to the set: a base replaces the view, a delta
// applies to it.
func (ls *localSet) add(b []byte, base bool) error {
	if base {
		es, err := psi.UnmarshalEncodedSet(b)
		if err != nil {
			return err
		}
		if ls.view, err = psi.NewSet(es); err != nil {
			return err
		}
		ls.bases = append(ls.bases, len(ls.segments))
	} else {
		d, err := psi.UnmarshalDelta(b)
		if err != nil {
			return err
		}
		if err := ls.view.Apply(d); err != nil {
			return err
		}
	}
	ls.segments = append(ls.segments, b)
	ls.digests = append(ls.digests, sha256.Sum256(b))
	return nil
}

// setEpochs is what the sets need of the epochs (epochs.go).
type setEpochs interface {
	epochState() epochState
	seed(e uint64) (psi.Seed, error)
	finishEpoch(st epochState) error
	retireSeed(current uint64)
}

// localSets is this replica's encoded sets of its agency's holdings, one
// per (kind, epoch, reach) of the live epochs (every reach of a kind
// follows the same manifest: the set of a reach holds the rows of its
// classes): it builds them from the data
// group's manifests and batches (computing outputs ahead of the build for
// batches this replica stores), keeps them in the local store, records
// their digests on the audit ledger, finishes a rotation once the new
// epoch's sets are ready and drops the sets of retired epochs. It serves
// the responders of matching and the segments of sync. Its goroutines
// (the build loop and the ahead loop) run from Start until Close.
type localSets struct {
	db       *badger.DB // segments, built counts and base markers of each set
	data     *raftGroup // read: manifests and batches
	audit    *raftGroup // digests; its leader finishes rotations
	epochs   setEpochs
	agency   string
	replica  string
	interval time.Duration
	log      *slog.Logger
	met      *setMetrics

	mu    sync.Mutex
	sets  map[string]*localSet // setKey
	ahead ahead                // precompute_ahead.go
	kick  chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup
}

// setsConfig is what newLocalSets builds the sets from.
type setsConfig struct {
	DB      *badger.DB
	Data    *raftGroup
	Audit   *raftGroup
	Epochs  setEpochs
	Agency  string
	Replica string
	// Interval is how often the build loop looks for new manifest
	// versions besides the kicks of commits. Zero: 100 ms.
	Interval time.Duration
	Logger   *slog.Logger         // nil: discard
	Registry *prometheus.Registry // the set metrics are registered here
}

func newLocalSets(c setsConfig) *localSets {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &localSets{db: c.DB, data: c.Data, audit: c.Audit, epochs: c.Epochs, agency: c.Agency, replica: c.Replica,
		interval: max(c.Interval, 100*time.Millisecond), log: log.With("component", "sets"), met: newSetMetrics(c.Registry),
		sets: map[string]*localSet{}, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	s.ahead.jobs, s.ahead.sets, s.ahead.pending = make(chan aheadJob, 256), map[string]aheadSet{}, map[string]chan struct{}{}
	return s
}

// Start starts the build loop and the ahead loop.
func (s *localSets) Start() {
	s.wg.Add(2)
	go s.aheadLoop()
	go s.buildLoop()
}

// Close stops the loops and returns when they have ended; the store is
// the caller's to close. A nil *localSets (never built) closes as nothing.
func (s *localSets) Close() error {
	if s == nil {
		return nil
	}
	close(s.stop)
	s.wg.Wait()
	return nil
}

// setKey names the set of (kind, epoch, reach) in the local store: the
// open reach keeps the key of the sets before reaches, "<kind>/<epoch>";
// another reach is "<kind>.<reach>/<epoch>".
func setKey(kind string, epoch uint64, reach string) string {
	if reach != reachOpen {
		kind += "." + reach
	}
	return fmt.Sprintf("%s/%020d", kind, epoch)
}

func (s *localSets) get(kind string, epoch uint64, reach string) *localSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets[setKey(kind, epoch, reach)]
}

// errCannotServe: this replica holds the set of a live epoch but cannot
// serve it now (not built yet, or its bytes differ from the ledger's until
// a newer base): the exchange answers "unavailable", and the partner asks
// the next replica of the card.
var errCannotServe = errors.New("this replica cannot serve the set now; ask another replica")

// unserved returns why (kind, epoch) has no set to serve here:
// exchange.ErrNoSet when the epoch is not live or nothing of kind is held
// in it (the answer of every replica), errCannotServe otherwise.
func (s *localSets) unserved(kind string, epoch uint64) error {
	if !slices.Contains(s.epochs.epochState().live(), epoch) {
		return exchange.ErrNoSet
	}
	if _, err := readManifest(s.data, kind, epoch); err != nil {
		return exchange.ErrNoSet
	}
	return errCannotServe
}

// responder returns the psi responder of (kind, epoch) and the version of
// the set in force on this replica; ok is false when it has none to
// serve (unserved says why).
func (s *localSets) responder(kind string, epoch uint64, reach string) (r *psi.Responder, version uint64, ok bool) {
	ls := s.get(kind, epoch, reach)
	if ls == nil {
		return nil, 0, false
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if _, _, ok := ls.served(); !ok {
		return nil, 0, false
	}
	return ls.resp, uint64(ls.recorded), true
}

// Holding returns the segments of (kind, epoch, reach) whose digests are
// on the ledger, or an error wrapping exchange.ErrNoSet or errCannotServe.
// A retired epoch has no set to sync even while its set is still in
// memory: the card sent with the answer no longer lists its key, so the
// partner could not verify it, and would not walk on to the epoch in force.
func (s *localSets) Holding(ctx context.Context, kind string, epoch uint64, reach string) (*exchange.Holding, error) {
	if !slices.Contains(s.epochs.epochState().live(), epoch) {
		return nil, fmt.Errorf("holding %s epoch %d: not a live epoch: %w", kind, epoch, exchange.ErrNoSet)
	}
	if ls := s.get(kind, epoch, reach); ls != nil {
		ls.mu.Lock()
		base, segs, ok := ls.served()
		ls.mu.Unlock()
		if ok {
			return &exchange.Holding{Base: uint32(base + 1), Segments: segs}, nil
		}
	}
	return nil, fmt.Errorf("holding %s epoch %d reach %s: %w", kind, epoch, reach, s.unserved(kind, epoch))
}

// describe fills in what ks says of the open set of (kind, epoch) built
// here.
func (s *localSets) describe(kind string, epoch uint64, ks *httpapi.KindStats) {
	ls := s.get(kind, epoch, reachOpen)
	if ls == nil {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ks.Built = len(ls.segments)
	ks.Full = ls.full
	if ls.view != nil {
		ks.Entries = ls.view.Entries()
	}
	if len(ls.bases) > 0 {
		ks.Digest = hex.EncodeToString(ls.digests[ls.bases[len(ls.bases)-1]][:])
	}
}

// setStats describes the set of (kind, epoch, reach) built here.
func (s *localSets) setStats(kind string, epoch uint64, reach string) httpapi.SetStats {
	out := httpapi.SetStats{Kind: kind, Epoch: epoch, Reach: reach}
	ls := s.get(kind, epoch, reach)
	if ls == nil {
		return out
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	base, _, ok := ls.served()
	out.Version, out.Serving = ls.recorded, ok
	if ok {
		out.Base = base + 1
	}
	if v := ls.recorded; v > 0 && ls.segments[v-1] != nil {
		out.Digest = hex.EncodeToString(ls.digests[v-1][:])
	}
	return out
}

// loadSet returns the local set of (kind, epoch, reach), loading what
// this replica built before from its store.
func (s *localSets) loadSet(kind string, epoch uint64, reach string) (*localSet, error) {
	if ls := s.get(kind, epoch, reach); ls != nil {
		return ls, nil
	}
	seed, err := s.epochs.seed(epoch)
	if err != nil {
		return nil, err
	}
	r, err := newSetResponder(seed, s.agency, kind, epoch, reach)
	if err != nil {
		return nil, err
	}
	ls := &localSet{kind: kind, epoch: epoch, reach: reach, resp: r}
	key := setKey(kind, epoch, reach)
	pfx := []byte("seg/" + key + "/")
	err = s.db.View(func(txn *badger.Txn) error {
		rebased := map[string]bool{}
		bit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(basePrefix(key))})
		for bit.Rewind(); bit.Valid(); bit.Next() {
			rebased[strings.TrimPrefix(string(bit.Item().Key()), basePrefix(key))] = true
		}
		bit.Close()
		if it, err := txn.Get([]byte("built/" + key)); err == nil {
			v, err := it.ValueCopy(nil)
			if err != nil || len(v) != 8 {
				return fmt.Errorf("read built count: %w", errRows)
			}
			ls.built = int(binary.BigEndian.Uint64(v))
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			version := strings.TrimPrefix(string(it.Item().Key()), string(pfx))
			v, err := strconv.Atoi(version)
			if err != nil || v <= len(ls.segments) {
				return fmt.Errorf("segment key %q: %w", version, errRows)
			}
			first := len(ls.bases) == 0
			for len(ls.segments) < v-1 {
				ls.skip() // versions before a base by decree, never built here
			}
			if err := ls.add(b, first || rebased[version]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load set %s epoch %d reach %s: %w", kind, epoch, reach, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev := s.sets[key]; prev != nil {
		return prev, nil
	}
	s.sets[key] = ls
	return ls, nil
}

// basePrefix is the local store's prefix of the markers of the segments
// of the set setKey names after the first that are bases (rebases), keyed
// by version as the segments are.
func basePrefix(setKey string) string { return "base/" + setKey + "/" }

// kickBuild makes the build loop look for new versions now.
func (s *localSets) kickBuild() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// buildLoop builds set versions as their manifests appear, one at a time
// (a bounded pool: one build, psi's workers inside it), until Close.
func (s *localSets) buildLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		s.buildPass()
	}
}

// buildPass builds what is missing for every live epoch, records digests,
// finishes a rotation once its sets are ready and drops retired epochs.
func (s *localSets) buildPass() {
	st := s.epochs.epochState()
	for _, e := range st.live() {
		for _, k := range ident.Kinds() {
			for _, reach := range setReaches {
				if err := s.buildKind(k, e, reach); err != nil {
					s.log.Warn("build encoded set", "kind", k.String(), "epoch", e, "reach", reach, "err", err)
				}
			}
		}
	}
	if st.Next != 0 && s.audit.Status().State == "Leader" && s.epochReady(st.Next) {
		if err := s.epochs.finishEpoch(st); err != nil {
			s.log.Warn("finish epoch", "epoch", st.Next, "err", err)
		}
	}
	s.retireLocal(st)
}

// epochReady reports whether this replica has built and recorded every
// set version of epoch e, of every reach.
func (s *localSets) epochReady(e uint64) bool {
	for _, k := range ident.Kinds() {
		m, err := readManifest(s.data, k.String(), e)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		for _, reach := range setReaches {
			ls := s.get(k.String(), e, reach)
			if err != nil || ls == nil {
				return false
			}
			ls.mu.Lock()
			_, _, ok := ls.served()
			ready := ls.built >= len(m.Versions) && ls.recorded == len(ls.segments) && ok
			ls.mu.Unlock()
			if !ready {
				return false
			}
		}
	}
	return true
}

// retireLocal drops the sets and the seed of retired epochs on this
// replica, once it has built the current epoch's sets: the seed of the
// current epoch replaces the stored one and the seed file, so no older
// seed is left (forward secrecy of old sets).
func (s *localSets) retireLocal(st epochState) {
	// Until this replica has the new epoch's sets, its old ones answer.
	if !s.epochReady(st.Current) {
		return
	}
	s.mu.Lock()
	var old []string
	for key, ls := range s.sets {
		if ls.epoch < st.Current {
			old = append(old, key)
			delete(s.sets, key)
		}
	}
	s.mu.Unlock()
	for _, key := range old {
		for _, pfx := range []string{"seg/" + key + "/", "built/" + key, basePrefix(key)} {
			if err := s.db.DropPrefix([]byte(pfx)); err != nil {
				s.log.Warn("drop retired set", "err", err)
			}
		}
	}
	s.epochs.retireSeed(st.Current)
}

// setMetrics are the metrics of the set builds.
type setMetrics struct {
	holdings *prometheus.GaugeVec   // identifiers in the newest build, by kind
	progress *prometheus.GaugeVec   // fraction of the running build done, by kind
	computed *prometheus.CounterVec // PRF outputs computed, by kind
	rate     *prometheus.GaugeVec   // outputs per second of the last build, by kind
	version  *prometheus.GaugeVec   // set version built, by kind and epoch
	full     *prometheus.GaugeVec   // 1 when a set is at psi's largest size, by kind and epoch
}

func newSetMetrics(reg *prometheus.Registry) *setMetrics {
	m := &setMetrics{
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
	}
	if reg != nil {
		reg.MustRegister(m.holdings, m.progress, m.computed, m.rate, m.version, m.full)
	}
	return m
}

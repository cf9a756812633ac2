package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// SetsDir is the replica's local store of built encoded sets and of the
// seeds of the live epochs (badger, encrypted with the storage key). It
// is not replicated: every replica builds the same bytes.
const SetsDir = "sets"

// precomputePiece is how many inputs one psi.Precompute call takes; the
// builder yields between pieces so that Raft's goroutines get the CPU.
const precomputePiece = 8192

// localSet is this replica's encoded set of one (kind, epoch): the
// responder, the segments built and the set they make. Segment i is set
// version i+1: a base, then deltas; when a version does not fit in the
// room a base keeps for deltas, a new base of every version so far is
// built (rebase) and the deltas after it apply to that one.
type localSet struct {
	mu       sync.Mutex
	kind     string
	epoch    uint64
	resp     *psi.Responder
	view     *psi.Set // the newest base and its deltas
	segments [][]byte
	digests  [][32]byte
	bases    []int // indexes of the segments that are bases, ascending; bases[0] == 0
	built    int   // manifest versions consumed
	recorded int   // segments whose digest is on the audit ledger
	bad      bool  // a digest differs from the one on the ledger: never served
	full     bool  // no room for more versions even in a new base (psi.MaxCapacity)
}

// served returns the newest base whose digest is recorded and the
// recorded segments from it, for partners; ok is false when none is.
func (ls *localSet) served() (base int, segs [][]byte, ok bool) {
	for i := len(ls.bases) - 1; i >= 0; i-- {
		if b := ls.bases[i]; b < ls.recorded {
			return b, slices.Clone(ls.segments[b:ls.recorded]), true
		}
	}
	return 0, nil, false
}

// holdingsNode is the part of Node that issue 8 adds: holdings, sets,
// epochs and partners' sets. Node embeds it.
type holdingsNode struct {
	hold       holdings
	manifestMu sync.Mutex
	sets       setStore
	partners   partnerStore
	epochMu    sync.Mutex
	seedBase   *seedRecord
	kick       chan struct{}
	erase      chan struct{}
	hmet       *holdingMetrics
	ahead      ahead
	hstop      chan struct{}
	hwg        sync.WaitGroup
}

type setStore struct {
	mu   sync.Mutex
	db   *badger.DB
	sets map[string]*localSet
}

func setKey(kind string, epoch uint64) string { return fmt.Sprintf("%s/%020d", kind, epoch) }

func (s *setStore) get(kind string, epoch uint64) *localSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets[setKey(kind, epoch)]
}

// openLocal opens a badger database under the data directory, encrypted
// with the storage key.
func (n *Node) openLocal(name string) (*badger.DB, error) {
	key, err := readHexSecret(n.path(StorageKeyFile), 32)
	if err != nil {
		return nil, fmt.Errorf("open %s: storage key: %w", name, err)
	}
	dir := n.path(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	opts := badger.DefaultOptions(filepath.Clean(dir)).WithLogger(nil).WithEncryptionKey(key).
		WithIndexCacheSize(8 << 20).WithMemTableSize(16 << 20).WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(8 << 20).WithNumCompactors(2)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return db, nil
}

// startHoldings opens the local stores and starts the builder and the
// partner sync loop; stopHoldings ends them.
func (n *Node) startHoldings() error {
	n.hold.imports = map[string]*importSession{}
	n.hold.index = map[string]map[string]struct{}{}
	n.sets.sets = map[string]*localSet{}
	n.kick, n.erase, n.hstop = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	n.hmet = newHoldingMetrics(n.met.reg)
	var err error
	if n.sets.db, err = n.openLocal(SetsDir); err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	if err := n.startPartners(); err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	n.ahead.jobs, n.ahead.sets, n.ahead.pending = make(chan aheadJob, 256), map[string]aheadSet{}, map[string]chan struct{}{}
	n.hwg.Add(4)
	go n.aheadLoop()
	go n.buildLoop()
	go n.eraseLoop()
	go n.syncLoop()
	return nil
}

func (n *Node) stopHoldings() error {
	if n.hstop == nil {
		return nil
	}
	close(n.hstop)
	n.hwg.Wait()
	var errs []error
	for _, db := range []*badger.DB{n.sets.db, n.partners.db} {
		if db != nil {
			if err := db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close local store: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func (n *Node) kickBuild() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Node) kickErase() {
	select {
	case n.erase <- struct{}{}:
	default:
	}
}

// buildLoop builds set versions as their manifests appear, one at a time
// (a bounded pool: one build, psi's workers inside it), until stopHoldings.
func (n *Node) buildLoop() {
	defer n.hwg.Done()
	t := time.NewTicker(max(n.cfg.WatchInterval, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-n.hstop:
			return
		case <-t.C:
		case <-n.kick:
		}
		n.buildPass()
	}
}

// buildPass builds what is missing for every live epoch, records digests,
// finishes a rotation once its sets are ready and drops retired epochs.
func (n *Node) buildPass() {
	st := n.epochState()
	for _, e := range st.live() {
		for _, k := range ident.Kinds() {
			if err := n.buildKind(k, e); err != nil {
				n.log.Warn("build encoded set", "kind", k.String(), "epoch", e, "err", err)
			}
		}
	}
	if st.Next != 0 && n.aud.Status().State == "Leader" && n.epochReady(st.Next) {
		if err := n.finishEpoch(st); err != nil {
			n.log.Warn("finish epoch", "epoch", st.Next, "err", err)
		}
	}
	n.retireLocal(st)
	n.collectOrphans() // orphans.go
}

// loadSet returns the local set of (kind, epoch), loading what this
// replica built before from its store.
func (n *Node) loadSet(kind string, epoch uint64) (*localSet, error) {
	if ls := n.sets.get(kind, epoch); ls != nil {
		return ls, nil
	}
	seed, err := n.seed(epoch)
	if err != nil {
		return nil, err
	}
	r, err := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: n.fc.Agency, Kind: kind, Epoch: epoch})
	if err != nil {
		return nil, err
	}
	ls := &localSet{kind: kind, epoch: epoch, resp: r}
	pfx := []byte("seg/" + setKey(kind, epoch) + "/")
	err = n.sets.db.View(func(txn *badger.Txn) error {
		rebased := map[string]bool{}
		bit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(basePrefix(kind, epoch))})
		for bit.Rewind(); bit.Valid(); bit.Next() {
			rebased[strings.TrimPrefix(string(bit.Item().Key()), basePrefix(kind, epoch))] = true
		}
		bit.Close()
		if it, err := txn.Get([]byte("built/" + setKey(kind, epoch))); err == nil {
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
			if err := ls.add(b, len(ls.segments) == 0 || rebased[version]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load set %s epoch %d: %w", kind, epoch, err)
	}
	n.sets.mu.Lock()
	defer n.sets.mu.Unlock()
	if prev := n.sets.sets[setKey(kind, epoch)]; prev != nil {
		return prev, nil
	}
	n.sets.sets[setKey(kind, epoch)] = ls
	return ls, nil
}

// basePrefix is the local store's prefix of the markers of the segments
// of (kind, epoch) after the first that are bases (rebases), keyed by
// version as the segments are.
func basePrefix(kind string, epoch uint64) string { return "base/" + setKey(kind, epoch) + "/" }

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

// buildKind builds the missing versions of (kind, epoch) and records their
// digests.
func (n *Node) buildKind(k ident.Kind, epoch uint64) error {
	kind := k.String()
	m, err := n.manifest(kind, epoch)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	ls, err := n.loadSet(kind, epoch)
	if err != nil {
		return err
	}
	// Only this goroutine changes ls; it locks ls.mu to publish changes to
	// the readers (responder, Holding), never while it computes.
	for ls.built < len(m.Versions) && !ls.full {
		select {
		case <-n.hstop:
			return nil
		default:
		}
		err := n.buildVersion(k, ls, m.Versions[ls.built], false)
		if errors.Is(err, errRebase) {
			// The version does not fit in the room the base keeps: a new
			// base of every version so far, with room again.
			var all []string
			for _, v := range m.Versions[:ls.built+1] {
				all = append(all, v...)
			}
			err = n.buildVersion(k, ls, all, true)
		}
		if err != nil {
			return err
		}
	}
	return n.recordDigests(ls)
}

// errRebase: a version's delta does not fit in its set.
var errRebase = errors.New("delta does not fit: build a new base")

// buildVersion computes the outputs of one manifest version's batches and
// adds them as the base set or a delta, in one local transaction. With
// rebase, batches are those of every version so far and they make a new
// base; without, a delta that does not fit returns errRebase.
func (n *Node) buildVersion(k ident.Kind, ls *localSet, batches []string, rebase bool) error {
	start := time.Now()
	// Outputs of every batch: computed ahead (precompute_ahead.go) or now.
	// Duplicates are dropped by output, which is the same as by identifier;
	// the encoded bytes do not depend on the order of the outputs.
	var inputs [][]byte
	var outs [][]byte
	add := func(key string, v []byte) error {
		rows, err := decodeRows(v)
		if err != nil {
			return fmt.Errorf("batch %s: %w", key, err)
		}
		for _, r := range rows {
			if in := ident.Input(k, r.value); in != nil {
				inputs = append(inputs, in)
			}
		}
		return nil
	}
	// Batches still being computed ahead are taken once that ends, after
	// the others: the two run side by side and no batch is computed twice.
	type waiting struct {
		key  string
		v    []byte
		done <-chan struct{}
	}
	var later []waiting
	for _, key := range batches {
		v, err := n.data.Get(nsRows, key)
		if errors.Is(err, ledger.ErrNotFound) {
			continue // removed since
		} else if err != nil {
			return err
		}
		if got, ok := n.takeAhead(ls.kind, ls.epoch, key, sha256.Sum256(v)); ok {
			outs = append(outs, got...)
			continue
		}
		if done := n.aheadPending(ls.kind, ls.epoch, key); done != nil {
			later = append(later, waiting{key, v, done})
			continue
		}
		if err := add(key, v); err != nil {
			return err
		}
	}
	total := len(inputs) + len(outs)
	for _, w := range later {
		total += len(w.v) / 16 // an estimate for the progress metric only
	}
	if err := n.computeOutputs(ls, inputs, &outs, total); err != nil {
		return err
	}
	inputs = inputs[:0]
	for _, w := range later {
		select {
		case <-n.hstop:
			return errors.New("build stopped")
		case <-w.done:
		}
		if got, ok := n.takeAhead(ls.kind, ls.epoch, w.key, sha256.Sum256(w.v)); ok {
			outs = append(outs, got...)
			continue
		}
		if err := add(w.key, w.v); err != nil {
			return err
		}
	}
	if err := n.computeOutputs(ls, inputs, &outs, len(outs)+len(inputs)); err != nil {
		return err
	}
	inputs = nil
	seen := make(map[string]struct{}, len(outs))
	uniq := outs[:0]
	for _, o := range outs {
		if _, ok := seen[string(o)]; !ok {
			seen[string(o)] = struct{}{}
			uniq = append(uniq, o)
		}
	}
	outs, seen = uniq, nil
	n.hmet.holdings.WithLabelValues(ls.kind).Set(float64(len(outs)))
	n.hmet.progress.WithLabelValues(ls.kind).Set(1)
	var seg []byte
	if len(ls.segments) == 0 || rebase {
		es, err := ls.resp.EncodeSet(uint32(len(ls.segments)+1), outs)
		if rebase && errors.Is(err, psi.ErrInput) {
			ls.mu.Lock()
			ls.full = true
			ls.mu.Unlock()
			n.hmet.full.WithLabelValues(ls.kind, strconv.FormatUint(ls.epoch, 10)).Set(1)
			n.log.Warn("encoded set at its largest size: later versions are not in it", "kind", ls.kind, "epoch", ls.epoch, "err", err)
			return nil
		} else if err != nil {
			return err
		}
		if seg, err = es.MarshalBinary(); err != nil {
			return err
		}
	} else {
		fresh := outs[:0]
		for _, o := range outs {
			if !ls.view.Contains(o) {
				fresh = append(fresh, o)
			}
		}
		if len(fresh) > 0 {
			d, err := ls.resp.EncodeDelta(ls.view, fresh)
			if errors.Is(err, psi.ErrSetFull) {
				return errRebase
			} else if err != nil {
				return err
			}
			if seg, err = d.MarshalBinary(); err != nil {
				return err
			}
		}
	}
	isBase := len(ls.segments) == 0 || rebase
	err := n.sets.db.Update(func(txn *badger.Txn) error {
		if seg != nil {
			v := fmt.Sprintf("%010d", len(ls.segments)+1)
			if err := txn.Set([]byte("seg/"+setKey(ls.kind, ls.epoch)+"/"+v), seg); err != nil {
				return err
			}
			if isBase && len(ls.segments) > 0 {
				if err := txn.Set([]byte(basePrefix(ls.kind, ls.epoch)+v), nil); err != nil {
					return err
				}
			}
		}
		return txn.Set([]byte("built/"+setKey(ls.kind, ls.epoch)), binary.BigEndian.AppendUint64(nil, uint64(ls.built+1)))
	})
	if err != nil {
		return fmt.Errorf("store set: %w", err)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if seg != nil {
		if err := ls.add(seg, isBase); err != nil {
			return err
		}
	}
	ls.built++
	n.hmet.version.WithLabelValues(ls.kind, fmt.Sprint(ls.epoch)).Set(float64(len(ls.segments)))
	if d := time.Since(start).Seconds(); d > 0 {
		n.hmet.rate.WithLabelValues(ls.kind).Set(float64(total) / d)
	}
	n.log.Info("encoded set built", "kind", ls.kind, "epoch", ls.epoch, "version", len(ls.segments), "inputs", total,
		"seconds", time.Since(start).Seconds())
	return nil
}

// setCommandID is the command ID of the audit entry that records the
// digest of (kind, epoch, version): every replica submits the same one and
// the ledger keeps the first, so the digest is recorded exactly once.
func setCommandID(kind string, epoch uint64, version int) string {
	return fmt.Sprintf("set/%s/%d/%d", kind, epoch, version)
}

// recordDigests records the digests not yet on the ledger and checks that
// the recorded one is this replica's; a set that differs is never served.
func (n *Node) recordDigests(ls *localSet) error {
	for ls.recorded < len(ls.segments) {
		v := ls.recorded + 1
		id := setCommandID(ls.kind, ls.epoch, v)
		ctx, cancel := context.WithTimeout(ledger.WithCommandID(context.Background(), id), 5*time.Second)
		d := ls.digests[v-1]
		r, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
			return n.aud.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeSync, Kind: ls.kind,
				Epoch: ls.epoch, SetVersion: uint64(v), PaddedSize: uint64(ls.view.Entries()), Outcome: ledger.OutcomeOK,
				Replica: n.fc.ReplicaID(), Digest: d}, Body: ledger.Body{Purpose: "encoded set built"}})
		})
		if err == nil {
			var es []ledger.Entry
			es, err = n.aud.Entries(ctx, ledger.Filter{After: r.Index, Limit: 1})
			if err == nil && (len(es) != 1 || es[0].Digest != ledger.Digest(d)) {
				ls.mu.Lock()
				ls.bad = true
				ls.mu.Unlock()
				err = fmt.Errorf("set %s epoch %d version %d: digest %s differs from the one on the ledger; not serving it",
					ls.kind, ls.epoch, v, hex.EncodeToString(d[:8]))
			}
		}
		cancel()
		if err != nil {
			return err
		}
		ls.mu.Lock()
		ls.recorded++
		ls.mu.Unlock()
	}
	return nil
}

// eraseLoop compacts the data group on this replica (snapshot, log
// truncation, badger GC) whenever a removal was applied: RemoveRows puts
// a new erase record after rewriting the batches, and every replica
// watches it (docs/holdings.md).
func (n *Node) eraseLoop() {
	defer n.hwg.Done()
	t := time.NewTicker(max(n.cfg.WatchInterval, 100*time.Millisecond))
	defer t.Stop()
	done := n.localString("erased")
	for {
		select {
		case <-n.hstop:
			return
		case <-t.C:
		case <-n.erase:
		}
		v, err := n.data.Get(nsErase, "last")
		if err != nil || string(v) == done {
			continue
		}
		start := time.Now()
		if err := n.data.Compact(); err != nil {
			n.log.Warn("erase removed holdings", "err", err)
			continue
		}
		done = string(v)
		n.setLocalString("erased", done)
		n.log.Info("removed holdings erased from disk", "seconds", time.Since(start).Seconds())
	}
}

// nsErase: key "last"; value: the ID of the latest removal. Every replica
// compacts its data group once it has applied a new one.
const nsErase = "erase"

// localString reads a small value of this replica's local store.
func (n *Node) localString(key string) string {
	var out string
	_ = n.sets.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("x/" + key))
		if err != nil {
			return err
		}
		b, err := it.ValueCopy(nil)
		out = string(b)
		return err
	})
	return out
}

func (n *Node) setLocalString(key, v string) {
	if err := n.sets.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/"+key), []byte(v)) }); err != nil {
		n.log.Warn("write local store", "err", err)
	}
}

// responder returns the psi responder of (kind, epoch) and the version of
// the set in force on this replica; ok is false when it has no ready set.
func (n *Node) responder(kind string, epoch uint64) (r *psi.Responder, version uint64, ok bool) {
	ls := n.sets.get(kind, epoch)
	if ls == nil {
		return nil, 0, false
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.bad || ls.recorded == 0 {
		return nil, 0, false
	}
	return ls.resp, uint64(ls.recorded), true
}

// currentEpoch is the epoch answering queries: the old one until the new
// one's sets are ready and its start is committed.
func (n *Node) currentEpoch() uint64 { return n.epochState().Current }

// computeOutputs appends the PRF outputs of inputs to *outs, in pieces
// with a yield between them, updating the progress metric against total.
func (n *Node) computeOutputs(ls *localSet, inputs [][]byte, outs *[][]byte, total int) error {
	for lo := 0; lo < len(inputs); lo += precomputePiece {
		select {
		case <-n.hstop:
			return errors.New("build stopped")
		default:
		}
		part, err := ls.resp.Precompute(inputs[lo:min(lo+precomputePiece, len(inputs))])
		if err != nil {
			return err
		}
		*outs = append(*outs, part...)
		n.hmet.progress.WithLabelValues(ls.kind).Set(min(float64(len(*outs))/float64(max(total, 1)), 1))
		n.hmet.computed.WithLabelValues(ls.kind).Add(float64(len(part)))
		runtime.Gosched()
	}
	return nil
}

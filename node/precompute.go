package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// precomputePiece is how many inputs one psi.Precompute call takes; the
// builder yields between pieces so that Raft's goroutines get the CPU.
const precomputePiece = 8192

// setReaches are the reaches whose sets every replica builds for each
// (kind, epoch): all three, an empty one padded like any other, so that a
// set's size says nothing of whether the agency holds victims.
var setReaches = reachNames

// newSetResponder is the responder of (kind, epoch, reach), its key derived
// from the epoch seed with the reach in the info (docs/psi.md).
func newSetResponder(seed psi.Seed, agency, kind string, epoch uint64, reach string) (*psi.Responder, error) {
	return psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: agency, Kind: kind, Epoch: epoch, Reach: reach})
}

// buildKind builds the missing versions of (kind, epoch, reach) and
// records their digests.
func (s *localSets) buildKind(k ident.Kind, epoch uint64, reach string) error {
	kind := k.String()
	m, err := readManifest(s.data, kind, epoch)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	ls, err := s.loadSet(kind, epoch, reach)
	if err != nil {
		return err
	}
	// Only this goroutine changes ls; it locks ls.mu to publish changes to
	// the readers (responder, Holding), never while it computes.
	for ls.built < len(m.Versions) && !ls.full {
		select {
		case <-s.stop:
			return nil
		default:
		}
		// A base by decree (a removal rewrote batches) is built from every
		// batch of the versions up to it, as they are now; the versions
		// before it that this replica has not built yet are skipped, as
		// their batches may have changed since the others built them.
		if b := m.decreedBase(len(m.Versions)); b > ls.built {
			if err := s.skipTo(ls, b-1); err != nil {
				return err
			}
			var all []string
			for _, v := range m.Versions[:b] {
				all = append(all, v...)
			}
			if err := s.buildVersion(k, ls, all, true); err != nil {
				return err
			}
			continue
		}
		err := s.buildVersion(k, ls, m.Versions[ls.built], false)
		if errors.Is(err, errRebase) {
			// The version does not fit in the room the base keeps: a new
			// base of every version so far, with room again.
			var all []string
			for _, v := range m.Versions[:ls.built+1] {
				all = append(all, v...)
			}
			err = s.buildVersion(k, ls, all, true)
		}
		if err != nil {
			return err
		}
	}
	return s.recordDigests(ls)
}

// skipTo marks the versions after the ones built, up to version v, as not
// built here (localSet.skip) and stores the built count. It also pads the
// segments to v: a version that added nothing to this reach (no rows of
// its classes, or none new) has no segment, so a replica that built every
// version may hold fewer segments than versions; the base by decree after
// them must have the same set version on every replica, whichever way it
// got there (a victim or witness set often has such versions).
func (s *localSets) skipTo(ls *localSet, v int) error {
	if ls.built < v {
		err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte("built/"+setKey(ls.kind, ls.epoch, ls.reach)), binary.BigEndian.AppendUint64(nil, uint64(v)))
		})
		if err != nil {
			return fmt.Errorf("store set: %w", err)
		}
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for len(ls.segments) < v {
		ls.skip()
	}
	ls.built = max(ls.built, v)
	return nil
}

// errRebase: a version's delta does not fit in its set.
var errRebase = errors.New("delta does not fit: build a new base")

// buildVersion computes the outputs of one manifest version's batches and
// adds them as the base set or a delta, in one local transaction. With
// rebase, batches are those of every version so far and they make a new
// base; without, a delta that does not fit returns errRebase.
func (s *localSets) buildVersion(k ident.Kind, ls *localSet, batches []string, rebase bool) error {
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
			if r.class.reach() != ls.reach {
				continue
			}
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
		v, err := s.data.Get(nsRows, key)
		if errors.Is(err, ledger.ErrNotFound) {
			continue // removed since
		} else if err != nil {
			return err
		}
		// Outputs computed ahead are the open reach's (computeAhead).
		if ls.reach == reachOpen {
			if got, ok := s.takeAhead(ls.kind, ls.epoch, key, sha256.Sum256(v)); ok {
				outs = append(outs, got...)
				continue
			}
			if done := s.aheadPending(ls.kind, ls.epoch, key); done != nil {
				later = append(later, waiting{key, v, done})
				continue
			}
		}
		if err := add(key, v); err != nil {
			return err
		}
	}
	total := len(inputs) + len(outs)
	for _, w := range later {
		total += len(w.v) / 16 // an estimate for the progress metric only
	}
	if err := s.computeOutputs(ls, inputs, &outs, total); err != nil {
		return err
	}
	inputs = inputs[:0]
	for _, w := range later {
		select {
		case <-s.stop:
			return errors.New("build stopped")
		case <-w.done:
		}
		if got, ok := s.takeAhead(ls.kind, ls.epoch, w.key, sha256.Sum256(w.v)); ok {
			outs = append(outs, got...)
			continue
		}
		if err := add(w.key, w.v); err != nil {
			return err
		}
	}
	if err := s.computeOutputs(ls, inputs, &outs, len(outs)+len(inputs)); err != nil {
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
	if ls.reach == reachOpen {
		s.met.holdings.WithLabelValues(ls.kind).Set(float64(len(outs)))
	}
	s.met.progress.WithLabelValues(ls.kind).Set(1)
	var seg []byte
	if len(ls.segments) == 0 || rebase {
		es, err := ls.resp.EncodeSet(uint32(len(ls.segments)+1), outs)
		if rebase && errors.Is(err, psi.ErrInput) {
			ls.mu.Lock()
			ls.full = true
			ls.mu.Unlock()
			s.met.full.WithLabelValues(ls.kind, strconv.FormatUint(ls.epoch, 10)).Set(1)
			s.log.Warn("encoded set at its largest size: later versions are not in it", "kind", ls.kind, "epoch", ls.epoch, "err", err)
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
	err := s.db.Update(func(txn *badger.Txn) error {
		if seg != nil {
			v := fmt.Sprintf("%010d", len(ls.segments)+1)
			if err := txn.Set([]byte("seg/"+setKey(ls.kind, ls.epoch, ls.reach)+"/"+v), seg); err != nil {
				return err
			}
			if isBase && len(ls.segments) > 0 {
				if err := txn.Set([]byte(basePrefix(setKey(ls.kind, ls.epoch, ls.reach))+v), nil); err != nil {
					return err
				}
			}
		}
		return txn.Set([]byte("built/"+setKey(ls.kind, ls.epoch, ls.reach)), binary.BigEndian.AppendUint64(nil, uint64(ls.built+1)))
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
	s.met.version.WithLabelValues(ls.kind, fmt.Sprint(ls.epoch)).Set(float64(len(ls.segments)))
	if d := time.Since(start).Seconds(); d > 0 {
		s.met.rate.WithLabelValues(ls.kind).Set(float64(total) / d)
	}
	s.log.Info("encoded set built", "kind", ls.kind, "epoch", ls.epoch, "reach", ls.reach, "version", len(ls.segments), "inputs", total,
		"seconds", time.Since(start).Seconds())
	return nil
}

// setCommandID is the command ID of the audit entry that records the
// digest of (kind, epoch, reach, version): every replica submits the same
// one and the ledger keeps the first, so the digest is recorded exactly
// once. The open reach keeps the IDs of the sets before reaches.
func setCommandID(kind string, epoch uint64, reach string, version int) string {
	if reach != reachOpen {
		kind += "." + reach
	}
	return fmt.Sprintf("set/%s/%d/%d", kind, epoch, version)
}

// recordDigests records the digests not yet on the ledger and checks that
// the recorded one is this replica's; a set that differs is never served.
func (s *localSets) recordDigests(ls *localSet) error {
	for ls.recorded < len(ls.segments) {
		v := ls.recorded + 1
		if ls.segments[v-1] == nil { // not built here (skip)
			ls.mu.Lock()
			ls.recorded++
			ls.mu.Unlock()
			continue
		}
		id := setCommandID(ls.kind, ls.epoch, ls.reach, v)
		ctx, cancel := context.WithTimeout(ledger.WithCommandID(context.Background(), id), 5*time.Second)
		d := ls.digests[v-1]
		r, err := s.audit.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeSync, Kind: ls.kind,
			Epoch: ls.epoch, SetVersion: uint64(v), PaddedSize: uint64(ls.view.Entries()), Outcome: ledger.OutcomeOK,
			Replica: s.replica, Digest: d, Reaches: ls.reach}, Body: ledger.Body{Purpose: "encoded set built"}})
		if err == nil {
			var es []ledger.Entry
			es, err = s.audit.Entries(ctx, ledger.Filter{After: r.Index, Limit: 1})
			if err == nil && (len(es) != 1 || es[0].Digest != ledger.Digest(d)) {
				// Not served until a newer base (served); the replica goes on
				// recording, so that it serves again from that base.
				ls.mu.Lock()
				ls.badAt = v
				ls.mu.Unlock()
				s.log.Error("encoded set differs from the digest on the ledger; not serving it until a newer base",
					"kind", ls.kind, "epoch", ls.epoch, "version", v, "digest", hex.EncodeToString(d[:8]))
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

// computeOutputs appends the PRF outputs of inputs to *outs, in pieces
// with a yield between them, updating the progress metric against total.
func (s *localSets) computeOutputs(ls *localSet, inputs [][]byte, outs *[][]byte, total int) error {
	for lo := 0; lo < len(inputs); lo += precomputePiece {
		select {
		case <-s.stop:
			return errors.New("build stopped")
		default:
		}
		part, err := ls.resp.Precompute(inputs[lo:min(lo+precomputePiece, len(inputs))])
		if err != nil {
			return err
		}
		*outs = append(*outs, part...)
		s.met.progress.WithLabelValues(ls.kind).Set(min(float64(len(*outs))/float64(max(total, 1)), 1))
		s.met.computed.WithLabelValues(ls.kind).Add(float64(len(part)))
		runtime.Gosched()
	}
	return nil
}

package node

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/xborder/xborder/ident"
)

// Outputs computed ahead: the replica that takes an import computes the
// PRF outputs of each batch as soon as it is stored, while the client is
// still sending the next ones (an import waits on the network and on Raft
// commits, leaving cores idle), so that the build after the commit only
// encodes. Every other replica computes them at build time. The bytes do
// not depend on which path computed an output: a set is encoded from its
// sorted values.

// maxAhead bounds the outputs held ahead of their build (64 bytes each).
const maxAhead = 4 << 20

// aheadJob is one stored batch to compute.
type aheadJob struct {
	kind   ident.Kind
	epochs []uint64
	key    string
	sum    [32]byte // SHA-256 of the stored record, so a rewritten batch is not used
	values []string
}

// aheadSet is what was computed of one batch for one epoch.
type aheadSet struct {
	sum  [32]byte
	outs [][]byte
}

// ahead is the outputs computed ahead of their build, and the batches
// queued or being computed.
type ahead struct {
	jobs chan aheadJob
	mu   sync.Mutex
	sets map[string]aheadSet // kind/epoch/batch key
	// pending holds, per kind/epoch/batch key queued or being computed, a
	// channel closed when that computation ends (stored or given up), so
	// that a build waits for it instead of computing the batch twice.
	pending map[string]chan struct{}
	held    int
}

func aheadKey(kind string, epoch uint64, batch string) string {
	return fmt.Sprintf("%s/%d/%s", kind, epoch, batch)
}

// computeAhead queues a stored batch; when the queue is full the build
// computes it instead.
//
// Only the rows of the open reach are computed ahead, with the open key:
// the victim and witness sets are small and built at build time.
func (s *localSets) computeAhead(k ident.Kind, key string, record []byte, rows []row) {
	vals := make([]string, 0, len(rows))
	for _, r := range rows {
		if r.class.reach() == reachOpen {
			vals = append(vals, r.value)
		}
	}
	j := aheadJob{kind: k, epochs: s.epochs.epochState().live(), key: key, sum: sha256.Sum256(record), values: vals}
	s.ahead.mu.Lock()
	defer s.ahead.mu.Unlock()
	select {
	case s.ahead.jobs <- j:
		for _, e := range j.epochs {
			s.ahead.pending[aheadKey(k.String(), e, key)] = make(chan struct{})
		}
	default:
	}
}

// aheadDone ends the pending computation of a batch for one epoch.
func (s *localSets) aheadDone(kind string, epoch uint64, batch string) {
	s.ahead.mu.Lock()
	defer s.ahead.mu.Unlock()
	k := aheadKey(kind, epoch, batch)
	if done, ok := s.ahead.pending[k]; ok {
		close(done)
		delete(s.ahead.pending, k)
	}
}

// aheadPending returns the channel closed when the computation ahead of a
// batch of (kind, epoch) ends, or nil when none is queued or running.
func (s *localSets) aheadPending(kind string, epoch uint64, batch string) <-chan struct{} {
	s.ahead.mu.Lock()
	defer s.ahead.mu.Unlock()
	if done, ok := s.ahead.pending[aheadKey(kind, epoch, batch)]; ok {
		return done
	}
	return nil
}

// aheadLoop computes queued batches until Close.
func (s *localSets) aheadLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case j := <-s.ahead.jobs:
			s.runAhead(j)
		}
	}
}

func (s *localSets) runAhead(j aheadJob) {
	for _, e := range j.epochs {
		defer s.aheadDone(j.kind.String(), e, j.key)
	}
	inputs := make([][]byte, 0, len(j.values))
	for _, v := range j.values {
		if in := ident.Input(j.kind, v); in != nil {
			inputs = append(inputs, in)
		}
	}
	for _, e := range j.epochs {
		s.ahead.mu.Lock()
		full := s.ahead.held+len(inputs) > maxAhead
		s.ahead.mu.Unlock()
		if full {
			return
		}
		ls, err := s.loadSet(j.kind.String(), e, reachOpen)
		if err != nil {
			return
		}
		outs := make([][]byte, 0, len(inputs))
		for lo := 0; lo < len(inputs); lo += precomputePiece {
			part, err := ls.resp.Precompute(inputs[lo:min(lo+precomputePiece, len(inputs))])
			if err != nil {
				s.log.Warn("compute outputs ahead", "kind", j.kind.String(), "err", err)
				return
			}
			outs = append(outs, part...)
			s.met.computed.WithLabelValues(j.kind.String()).Add(float64(len(part)))
			runtime.Gosched()
		}
		s.ahead.mu.Lock()
		s.ahead.sets[aheadKey(j.kind.String(), e, j.key)] = aheadSet{sum: j.sum, outs: outs}
		s.ahead.held += len(outs)
		s.ahead.mu.Unlock()
		s.aheadDone(j.kind.String(), e, j.key)
	}
}

// takeAhead returns (and forgets) the outputs computed ahead for a batch
// of (kind, epoch) whose stored record hashes to sum.
func (s *localSets) takeAhead(kind string, epoch uint64, batch string, sum [32]byte) ([][]byte, bool) {
	s.ahead.mu.Lock()
	defer s.ahead.mu.Unlock()
	k := aheadKey(kind, epoch, batch)
	set, ok := s.ahead.sets[k]
	if !ok {
		return nil, false
	}
	delete(s.ahead.sets, k)
	s.ahead.held -= len(set.outs)
	return set.outs, set.sum == sum
}

// dropAhead forgets the outputs computed ahead for the batches of an
// abandoned import id of kind (any epoch).
func (s *localSets) dropAhead(kind, id string) {
	pfx := kind + "/" + id + "/"
	s.ahead.mu.Lock()
	defer s.ahead.mu.Unlock()
	for k, set := range s.ahead.sets {
		// aheadKey: kind/epoch/batch, batch: kind/import/number.
		if _, batch, ok := strings.Cut(strings.TrimPrefix(k, kind+"/"), "/"); ok && strings.HasPrefix(batch, pfx) {
			delete(s.ahead.sets, k)
			s.ahead.held -= len(set.outs)
		}
	}
}

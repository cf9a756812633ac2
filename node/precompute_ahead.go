package node

import (
	"crypto/sha256"
	"fmt"
	"runtime"
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

type ahead struct {
	jobs chan aheadJob
	mu   sync.Mutex
	sets map[string]aheadSet // kind/epoch/batch key
	held int
}

func aheadKey(kind string, epoch uint64, batch string) string {
	return fmt.Sprintf("%s/%d/%s", kind, epoch, batch)
}

// computeAhead queues a stored batch; when the queue is full the build
// computes it instead.
func (n *Node) computeAhead(k ident.Kind, key string, record []byte, rows []row) {
	vals := make([]string, len(rows))
	for i, r := range rows {
		vals[i] = r.value
	}
	j := aheadJob{kind: k, epochs: n.epochState().live(), key: key, sum: sha256.Sum256(record), values: vals}
	select {
	case n.ahead.jobs <- j:
	default:
	}
}

// aheadLoop computes queued batches until stopHoldings.
func (n *Node) aheadLoop() {
	defer n.hwg.Done()
	for {
		select {
		case <-n.hstop:
			return
		case j := <-n.ahead.jobs:
			n.runAhead(j)
		}
	}
}

func (n *Node) runAhead(j aheadJob) {
	inputs := make([][]byte, 0, len(j.values))
	for _, v := range j.values {
		if in := ident.Input(j.kind, v); in != nil {
			inputs = append(inputs, in)
		}
	}
	for _, e := range j.epochs {
		n.ahead.mu.Lock()
		full := n.ahead.held+len(inputs) > maxAhead
		n.ahead.mu.Unlock()
		if full {
			return
		}
		ls, err := n.loadSet(j.kind.String(), e)
		if err != nil {
			return
		}
		outs := make([][]byte, 0, len(inputs))
		for lo := 0; lo < len(inputs); lo += precomputePiece {
			part, err := ls.resp.Precompute(inputs[lo:min(lo+precomputePiece, len(inputs))])
			if err != nil {
				n.log.Warn("compute outputs ahead", "kind", j.kind.String(), "err", err)
				return
			}
			outs = append(outs, part...)
			n.hmet.computed.WithLabelValues(j.kind.String()).Add(float64(len(part)))
			runtime.Gosched()
		}
		n.ahead.mu.Lock()
		n.ahead.sets[aheadKey(j.kind.String(), e, j.key)] = aheadSet{sum: j.sum, outs: outs}
		n.ahead.held += len(outs)
		n.ahead.mu.Unlock()
	}
}

// takeAhead returns (and forgets) the outputs computed ahead for a batch
// of (kind, epoch) whose stored record hashes to sum.
func (n *Node) takeAhead(kind string, epoch uint64, batch string, sum [32]byte) ([][]byte, bool) {
	n.ahead.mu.Lock()
	defer n.ahead.mu.Unlock()
	k := aheadKey(kind, epoch, batch)
	s, ok := n.ahead.sets[k]
	if !ok {
		return nil, false
	}
	delete(n.ahead.sets, k)
	n.ahead.held -= len(s.outs)
	return s.outs, s.sum == sum
}

package psi

import (
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/zk/dleq"
)

// ErrProof is returned by Query.Finalize when an evaluation does not prove
// that the pinned key computed it: a proof fails, an element is the
// identity, or the evaluation does not answer the request. The responder is
// broken or cheating: report a verification failure and use no result.
var ErrProof = errors.New("psi: evaluation proof verification failed")

// Bucket returns the padded size of a query of n distinct inputs: the next
// power of two up to 1,024, then the next multiple of 1,024.
func Bucket(n int) int {
	if n <= 1 {
		return 1
	}
	if n <= 1024 {
		b := 1
		for b < n {
			b <<= 1
		}
		return b
	}
	return (n + 1023) / 1024 * 1024
}

// QuerierConfig configures a Querier. Kind and Dummy are required.
type QuerierConfig struct {
	// Key is the partner's pinned public key for Kind and Epoch when
	// every query is checked against one key (Finalize, Match). nil when
	// the same blinded batch is evaluated under the keys of several
	// reaches: then each evaluation is checked against its own key with
	// FinalizeKey or MatchKey, and Finalize and Match fail with ErrKey.
	Key *PublicKey
	// Kind is the kind every request declares.
	Kind string
	// Epoch is the epoch of Key.
	Epoch uint64
	// Dummy returns one padding input drawn from the reader, framed so it
	// can never equal a real input (ident's reserved kind).
	Dummy func(io.Reader) ([]byte, error)
	// ChunkSize is the number of elements per proof; zero splits each
	// request into four chunks per worker (at least MinChunk elements
	// each), so every core proves and verifies.
	ChunkSize int
	// Workers is the number of goroutines used inside a call; zero means
	// runtime.GOMAXPROCS(0).
	Workers int
}

// Querier blinds queries for one partner, kind and epoch, and checks the
// answers against the partner's keys (one per reach).
// It is safe for concurrent use.
type Querier struct {
	cfg     QuerierConfig
	workers int
	dleq    dleq.Params
	dst     []byte
}

// NewQuerier checks the configuration and returns a querier.
func NewQuerier(cfg QuerierConfig) (*Querier, error) {
	if cfg.Key != nil && (cfg.Key.e == nil || cfg.Key.e.IsIdentity()) {
		return nil, fmt.Errorf("new querier: invalid public key: %w", ErrKey)
	}
	if err := checkName("kind", cfg.Kind, MaxKindLen); err != nil {
		return nil, fmt.Errorf("new querier: %w", err)
	}
	if cfg.Dummy == nil {
		return nil, errors.New("new querier: no dummy source")
	}
	if cfg.ChunkSize < 0 || cfg.ChunkSize > MaxChunk {
		return nil, fmt.Errorf("new querier: chunk size %d (want 0 to %d)", cfg.ChunkSize, MaxChunk)
	}
	return &Querier{
		cfg:     cfg,
		workers: workerCount(cfg.Workers),
		dleq:    dleqParams(),
		dst:     []byte("HashToGroup-OPRFV1-\x01-" + SuiteName),
	}, nil
}

// Query is the secret state of one query between Blind and Finalize: the
// inputs and their blinds. Keep it in memory only and drop it after use.
type Query struct {
	q       *Querier
	inputs  [][]byte       // distinct inputs, then dummies
	where   [][]int        // caller indexes of each distinct input
	ncaller int            // number of caller inputs
	blinds  []group.Scalar // one per element
	req     *EvalRequest   // as sent
	// inv holds the inverses of the real inputs' blinds, computed once
	// and shared by the evaluations of every reach.
	invOnce sync.Once
	inv     []group.Scalar
}

// Blind de-duplicates the inputs, pads them to Bucket(distinct) with
// dummies, and blinds each with a scalar from rnd. It returns the secret
// query state and the request to send.
func (q *Querier) Blind(inputs [][]byte, rnd io.Reader) (*Query, *EvalRequest, error) {
	if err := checkInputs(inputs); err != nil {
		return nil, nil, fmt.Errorf("blind: %w", err)
	}
	seen := make(map[string]int, len(inputs))
	qy := &Query{q: q, ncaller: len(inputs)}
	for i, in := range inputs {
		if j, ok := seen[string(in)]; ok {
			qy.where[j] = append(qy.where[j], i)
			continue
		}
		seen[string(in)] = len(qy.inputs)
		qy.inputs = append(qy.inputs, in)
		qy.where = append(qy.where, []int{i})
	}
	n := Bucket(len(qy.inputs))
	if n > MaxElements {
		return nil, nil, fmt.Errorf("blind %d distinct inputs (at most %d): %w", len(qy.inputs), MaxElements, ErrInput)
	}
	for len(qy.inputs) < n {
		d, err := q.cfg.Dummy(rnd)
		if err != nil {
			return nil, nil, fmt.Errorf("blind: draw dummy: %w", err)
		}
		if len(d) == 0 || len(d) > MaxInputLen {
			return nil, nil, fmt.Errorf("blind: dummy of %d bytes: %w", len(d), ErrInput)
		}
		qy.inputs = append(qy.inputs, d)
	}
	blinds := make([]group.Scalar, n)
	for i := range blinds {
		s, err := randomScalar(rnd)
		if err != nil {
			return nil, nil, fmt.Errorf("blind: %w", err)
		}
		blinds[i] = s
	}
	req, err := qy.blind(blinds)
	if err != nil {
		return nil, nil, err
	}
	return qy, req, nil
}

// chunkSize returns the chunk size for n elements.
func (q *Querier) chunkSize(n int) int {
	if q.cfg.ChunkSize > 0 {
		if q.cfg.ChunkSize < MinChunk {
			return min(n, MinChunk)
		}
		return q.cfg.ChunkSize
	}
	c := (n + 4*q.workers - 1) / (4 * q.workers)
	c = max(c, MinChunk)
	return min(c, n, MaxChunk)
}

// blind computes the blinded elements of qy.inputs with the given blinds,
// on all workers.
func (qy *Query) blind(blinds []group.Scalar) (*EvalRequest, error) {
	q := qy.q
	qy.blinds = blinds
	elems := make([]group.Element, len(qy.inputs))
	err := parallel(q.workers, len(elems), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			p := g.HashToElement(qy.inputs[i], q.dst)
			e := g.NewElement().Mul(p, blinds[i])
			if p.IsIdentity() || e.IsIdentity() {
				return fmt.Errorf("blind input %d: identity element: %w", i, ErrInput)
			}
			elems[i] = e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	qy.req = &EvalRequest{Kind: q.cfg.Kind, Epoch: q.cfg.Epoch, ChunkSize: q.chunkSize(len(elems)), elements: elems}
	return qy.req, nil
}

// Request returns the request Blind built, as sent.
func (qy *Query) Request() *EvalRequest { return qy.req }

// Finalize is FinalizeKey with the querier's configured key.
func (qy *Query) Finalize(ev *Evaluation) ([][]byte, error) {
	return qy.FinalizeKey(qy.q.cfg.Key, ev)
}

// FinalizeKey verifies every chunk's proof against key (the pinned key of
// the reach the evaluation claims to answer), then unblinds and hashes: it
// returns the PRF output of each caller input (duplicates share one). On
// any failure it returns no output at all. One query may be finalised
// under several keys, one evaluation each: the blinds are the same, the
// outputs differ per key.
func (qy *Query) FinalizeKey(key *PublicKey, ev *Evaluation) ([][]byte, error) {
	outs, err := qy.finalize(key, ev)
	if err != nil {
		return nil, err
	}
	res := make([][]byte, qy.ncaller)
	for j, idx := range qy.where {
		for _, i := range idx {
			res[i] = outs[j]
		}
	}
	return res, nil
}

// Match is MatchKey with the querier's configured key.
func (qy *Query) Match(ev *Evaluation, set *Set) ([]int, error) {
	return qy.MatchKey(qy.q.cfg.Key, ev, set)
}

// MatchKey finalises the evaluation under key (as FinalizeKey) and looks
// every output up in the partner's set of that key (base plus deltas). It
// returns the indexes of the caller's inputs that hit, in increasing
// order: a duplicated input hits at each of its indexes. On a failed proof
// it returns ErrProof and no hits; a set of another key, kind or epoch is
// ErrSetMismatch.
func (qy *Query) MatchKey(key *PublicKey, ev *Evaluation, set *Set) ([]int, error) {
	if key == nil {
		return nil, fmt.Errorf("match: no public key: %w", ErrKey)
	}
	if set == nil || set.kind != qy.q.cfg.Kind || set.epoch != qy.q.cfg.Epoch || !bytesEqualKey(set.key, key) {
		return nil, fmt.Errorf("match: set of another key, kind or epoch: %w", ErrSetMismatch)
	}
	outs, err := qy.finalize(key, ev)
	if err != nil {
		return nil, err
	}
	hit := make([]bool, qy.ncaller)
	found := false
	for j, idx := range qy.where {
		if set.Contains(outs[j]) {
			found = true
			for _, i := range idx {
				hit[i] = true
			}
		}
	}
	if !found {
		return []int{}, nil
	}
	var hits []int
	for i, h := range hit {
		if h {
			hits = append(hits, i)
		}
	}
	return hits, nil
}

func bytesEqualKey(raw [PublicKeySize]byte, k *PublicKey) bool {
	b, err := k.MarshalBinary()
	return err == nil && string(b) == string(raw[:])
}

// finalize returns the outputs of the distinct real inputs.
func (qy *Query) finalize(key *PublicKey, ev *Evaluation) ([][]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("finalize: no public key: %w", ErrKey)
	}
	if err := verify(qy.q.workers, qy.q.dleq, key, qy.req, ev); err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	distinct := len(qy.where)
	outs := make([][]byte, distinct)
	inv := qy.inverses()
	_ = parallel(qy.q.workers, distinct, func(lo, hi int) error {
		u := g.NewElement()
		h := sha512.New()
		for i := lo; i < hi; i++ {
			u.Mul(ev.elements[i], inv[i])
			el, _ := u.MarshalBinaryCompress()
			outs[i] = finalizeHash(h, qy.inputs[i], el)
		}
		return nil
	})
	return outs, nil
}

// inverses returns the inverses of the distinct real inputs' blinds,
// computed on the first call (one inversion per worker's range) and shared
// by the finalisation under every reach's key. Safe for concurrent use.
func (qy *Query) inverses() []group.Scalar {
	qy.invOnce.Do(func() {
		distinct := len(qy.where)
		qy.inv = make([]group.Scalar, distinct)
		_ = parallel(qy.q.workers, distinct, func(lo, hi int) error {
			copy(qy.inv[lo:hi], batchInvert(qy.blinds[lo:hi]))
			return nil
		})
	})
	return qy.inv
}

// finalizeHash is RFC 9497 Finalize for VOPRF mode:
// H(len(input) ‖ input ‖ len(element) ‖ element ‖ "Finalize").
func finalizeHash(h interface {
	io.Writer
	Reset()
	Sum([]byte) []byte
}, input, element []byte) []byte {
	h.Reset()
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(input)))
	h.Write(l[:])
	h.Write(input)
	binary.BigEndian.PutUint16(l[:], uint16(len(element)))
	h.Write(l[:])
	h.Write(element)
	h.Write([]byte("Finalize"))
	return h.Sum(nil)
}

// batchInvert inverts scalars with one inversion and 3(n-1)
// multiplications (Montgomery's trick). No scalar may be zero.
func batchInvert(s []group.Scalar) []group.Scalar {
	n := len(s)
	out := make([]group.Scalar, n)
	if n == 0 {
		return out
	}
	prefix := make([]group.Scalar, n)
	acc := g.NewScalar().Set(s[0])
	prefix[0] = acc.Copy()
	for i := 1; i < n; i++ {
		acc.Mul(acc, s[i])
		prefix[i] = acc.Copy()
	}
	inv := g.NewScalar().Inv(acc)
	for i := n - 1; i > 0; i-- {
		out[i] = g.NewScalar().Mul(inv, prefix[i-1])
		inv.Mul(inv, s[i])
	}
	out[0] = inv
	return out
}

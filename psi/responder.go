package psi

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
)

// MaxInputLen caps the length of one input (a framed identifier). circl
// frames inputs with a 16-bit length that would wrap past 65,535 bytes.
const MaxInputLen = 4096

// ErrInput is returned for inputs the protocol refuses: none at all, an
// empty one, or one longer than MaxInputLen. Fix the input.
var ErrInput = errors.New("psi: invalid input")

// ErrRequest is returned by Evaluate for a request this responder must not
// answer: another kind or epoch than its key's, or a bad shape. Refuse the
// request.
var ErrRequest = errors.New("psi: request does not fit this key")

// ResponderConfig configures a Responder. Seed, Agency, Kind and Reach are
// required.
type ResponderConfig struct {
	// Seed is the epoch seed. The responder keeps a copy for padding.
	Seed Seed
	// Agency is this agency's code, part of the key derivation.
	Agency string
	// Kind names the identifier kind this key serves.
	Kind string
	// Epoch is the epoch number.
	Epoch uint64
	// Reach names the part of the holdings this key serves (xborder's
	// reaches are "open", "victim" and "witness"): each reach has a key and
	// an encoded set of its own. It has no default: an empty reach is
	// refused, so that no caller derives an unintended key.
	Reach string
	// Workers is the number of goroutines used inside a call; zero means
	// runtime.GOMAXPROCS(0).
	Workers int
}

// Responder holds the VOPRF key of one (agency, kind, epoch, reach): it
// precomputes outputs of holdings, encodes sets and deltas, and evaluates
// blinded requests. It is safe for concurrent use; it starts no goroutine
// that outlives a call.
type Responder struct {
	seed    Seed
	kind    string
	reach   string
	epoch   uint64
	workers int
	sk      *oprf.PrivateKey
	k       group.Scalar
	pub     *PublicKey
	pubRaw  [PublicKeySize]byte
	srv     oprf.VerifiableServer
	dleq    dleq.Params
}

// NewResponder derives the key of (cfg.Agency, cfg.Kind, cfg.Epoch,
// cfg.Reach) from the epoch seed with RFC 9497 DeriveKeyPair, info
// "xborder/v1|<agency>|<kind>|<epoch>|<reach>".
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if err := checkName("agency", cfg.Agency, MaxAgencyLen); err != nil {
		return nil, fmt.Errorf("new responder: %w", err)
	}
	if err := checkName("kind", cfg.Kind, MaxKindLen); err != nil {
		return nil, fmt.Errorf("new responder: %w", err)
	}
	if err := checkName("reach", cfg.Reach, MaxReachLen); err != nil {
		return nil, fmt.Errorf("new responder: %w", err)
	}
	sk, err := deriveKey(cfg.Seed[:], keyInfo(cfg.Agency, cfg.Kind, cfg.Epoch, cfg.Reach))
	if err != nil {
		return nil, fmt.Errorf("new responder: %w", err)
	}
	r, err := newResponder(sk, cfg.Workers)
	if err != nil {
		return nil, fmt.Errorf("new responder: %w", err)
	}
	r.seed, r.kind, r.epoch, r.reach = cfg.Seed, cfg.Kind, cfg.Epoch, cfg.Reach
	return r, nil
}

func newResponder(sk *oprf.PrivateKey, workers int) (*Responder, error) {
	raw, err := sk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	k := g.NewScalar()
	if err := k.UnmarshalBinary(raw); err != nil {
		return nil, err
	}
	pub := &PublicKey{e: g.NewElement().MulGen(k)}
	pubBytes, err := pub.MarshalBinary()
	if err != nil {
		return nil, err
	}
	r := &Responder{
		workers: workerCount(workers),
		sk:      sk,
		k:       k,
		pub:     pub,
		srv:     oprf.NewVerifiableServer(suite, sk),
		dleq:    dleqParams(),
	}
	copy(r.pubRaw[:], pubBytes)
	return r, nil
}

// dleqParams are the DLEQ parameters of VOPRF ristretto255-SHA512, as circl's
// server and client use them: DST "OPRFV1-" ‖ 0x01 ‖ "-ristretto255-SHA512".
func dleqParams() dleq.Params {
	return dleq.Params{G: g, H: suite.Hash(), DST: []byte("OPRFV1-\x01-" + SuiteName)}
}

func workerCount(n int) int {
	if n <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return n
}

// PublicKey returns the key queriers pin.
func (r *Responder) PublicKey() *PublicKey { return r.pub }

// Kind returns the kind the responder's key serves.
func (r *Responder) Kind() string { return r.kind }

// Reach returns the reach the responder's key serves.
func (r *Responder) Reach() string { return r.reach }

// Epoch returns the epoch of the responder's key.
func (r *Responder) Epoch() uint64 { return r.epoch }

// parallel runs fn over [0, n) split into contiguous ranges, one per worker,
// and returns the first error. All goroutines end before it returns.
func parallel(workers, n int, fn func(lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	workers = min(workers, n)
	if workers <= 1 {
		return fn(0, n)
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { errs[w] = fn(lo, hi) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// parallelItems runs fn(i) for i in [0, n), workers pulling items in order,
// for uneven items such as chunks. After an error no new item starts.
func parallelItems(workers, n int, fn func(i int) error) error {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		next   int
		failed bool
		errs   = make([]error, n)
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := failed
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if errs[i] = fn(i); errs[i] != nil {
					mu.Lock()
					failed = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func checkInputs(inputs [][]byte) error {
	if len(inputs) == 0 {
		return fmt.Errorf("no inputs: %w", ErrInput)
	}
	for i, in := range inputs {
		if len(in) == 0 || len(in) > MaxInputLen {
			return fmt.Errorf("input %d of %d bytes (want 1 to %d): %w", i, len(in), MaxInputLen, ErrInput)
		}
	}
	return nil
}

// Precompute returns the PRF output (64 bytes) of every input, computed on
// all workers with circl's VerifiableServer.FullEvaluate. Call it for the
// whole holdings, then again for each batch of additions.
func (r *Responder) Precompute(inputs [][]byte) ([][]byte, error) {
	if err := checkInputs(inputs); err != nil {
		return nil, fmt.Errorf("precompute: %w", err)
	}
	out := make([][]byte, len(inputs))
	// Small ranges keep all workers busy when one core is shared.
	const step = 256
	err := parallelItems(r.workers, chunks(len(inputs), step), func(c int) error {
		for i := c * step; i < min((c+1)*step, len(inputs)); i++ {
			o, err := r.srv.FullEvaluate(inputs[i])
			if err != nil {
				return fmt.Errorf("precompute input %d: %w", i, err)
			}
			out[i] = o
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Evaluate answers a blinded request: it checks that the request names this
// key's kind and epoch (a request names no reach: the same blinded batch may
// be evaluated by the responders of several reaches, one Evaluation each), multiplies every element by the key on all workers,
// and proves each chunk with an RFC 9497 batch DLEQ proof whose nonce comes
// from rnd. The caller must have checked policy and budgets first.
func (r *Responder) Evaluate(req *EvalRequest, rnd io.Reader) (*Evaluation, error) {
	if err := r.checkRequest(req); err != nil {
		return nil, err
	}
	nonces := make([]group.Scalar, chunks(req.Len(), req.ChunkSize))
	for i := range nonces {
		s, err := randomScalar(rnd)
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		nonces[i] = s
	}
	return r.evaluate(req, nonces)
}

func (r *Responder) checkRequest(req *EvalRequest) error {
	if req.Kind != r.kind || req.Epoch != r.epoch {
		return fmt.Errorf("evaluate request for another kind or epoch: %w", ErrRequest)
	}
	if err := checkShape(req.Len(), req.ChunkSize); err != nil {
		return fmt.Errorf("evaluate request: %v: %w", err, ErrRequest)
	}
	for i, e := range req.elements {
		if e == nil || e.IsIdentity() {
			return fmt.Errorf("evaluate request: element %d is the identity: %w", i, ErrRequest)
		}
	}
	return nil
}

// evaluate is Evaluate with the proof nonces given, one per chunk.
func (r *Responder) evaluate(req *EvalRequest, nonces []group.Scalar) (*Evaluation, error) {
	n, cs := req.Len(), req.ChunkSize
	ev := &Evaluation{ChunkSize: cs, elements: make([]group.Element, n), proofs: make([][proofSize]byte, len(nonces))}
	_ = parallel(r.workers, n, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			ev.elements[i] = g.NewElement().Mul(req.elements[i], r.k)
		}
		return nil
	})
	prover := dleq.Prover{Params: r.dleq}
	err := parallelItems(r.workers, len(nonces), func(c int) error {
		lo, hi := c*cs, min((c+1)*cs, n)
		p, err := prover.ProveBatchWithRandomnessRFC9497(r.k, r.pub.e, req.elements[lo:hi], ev.elements[lo:hi], nonces[c])
		if err != nil {
			return fmt.Errorf("prove chunk %d: %w", c, err)
		}
		raw, err := p.MarshalBinary()
		if err != nil {
			return fmt.Errorf("encode proof of chunk %d: %w", c, err)
		}
		if len(raw) != proofSize {
			return fmt.Errorf("encode proof of chunk %d: %d bytes", c, len(raw))
		}
		copy(ev.proofs[c][:], raw)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	return ev, nil
}

// randomScalar draws a uniform non-zero scalar from 64 bytes of rnd.
// (circl's ristretto255 RandomScalar ignores its reader.)
func randomScalar(rnd io.Reader) (group.Scalar, error) {
	var buf [64]byte
	for {
		if _, err := io.ReadFull(rnd, buf[:]); err != nil {
			return nil, fmt.Errorf("read randomness: %w", err)
		}
		s := g.HashToScalar(buf[:], []byte("xborder/v1/random"))
		if !s.IsZero() {
			return s, nil
		}
	}
}

// filterValues hashes outputs to set values under the given capacity, on
// all workers.
func (r *Responder) filterValues(outputs [][]byte, base uint32, capacity uint64, dst []uint64) error {
	return parallel(r.workers, len(outputs), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if len(outputs[i]) != outputSize {
				return fmt.Errorf("output %d of %d bytes (want %d): %w", i, len(outputs[i]), outputSize, ErrInput)
			}
			h, l := filterDigest(base, outputs[i])
			dst[i] = reduce(h, l, capacity)
		}
		return nil
	})
}

// outputSize is the length of a PRF output (SHA-512).
const outputSize = 64

// EncodeSet builds the base set of the given version from the outputs of
// all current holdings (from Precompute), padded to Padded(Capacity(n))
// entries with values derived from the epoch seed, kind and version. The
// same holdings, seed and version give the same bytes on every replica.
func (r *Responder) EncodeSet(version uint32, outputs [][]byte) (*EncodedSet, error) {
	c := Capacity(len(outputs))
	if c == 0 {
		return nil, fmt.Errorf("encode set of %d outputs (at most %d): %w", len(outputs), Padded(MaxCapacity), ErrInput)
	}
	capacity := uint64(c)
	padded := Padded(c)
	pads := padValues(&r.seed, r.kind, r.reach, strconv.FormatUint(uint64(version), 10), capacity, padded-len(outputs))
	values := make([]uint64, len(outputs), padded)
	if err := r.filterValues(outputs, version, capacity, values); err != nil {
		return nil, fmt.Errorf("encode set: %w", err)
	}
	values = append(values, pads...)
	slices.Sort(values)
	k := riceParam(capacity, uint64(padded))
	return &EncodedSet{
		Kind: r.kind, Reach: r.reach, Epoch: r.epoch, Version: version, Capacity: uint32(c),
		key: r.pubRaw, count: uint32(padded), k: k, data: riceEncode(values, k), values: values,
	}, nil
}

// DeltaSize returns the padded size of a delta of n additions: the querier
// bucket schedule (powers of two up to 1,024, then multiples of 1,024).
func DeltaSize(n int) int { return Bucket(n) }

// EncodeDelta encodes additions (outputs from Precompute) as the next
// delta of s, which must be this responder's current set (base plus every
// delta so far). The delta is padded to DeltaSize entries with values derived
// from the seed, kind, reach and its version. It returns ErrSetFull when the
// capacity would be passed: then build a new base set.
func (r *Responder) EncodeDelta(s *Set, outputs [][]byte) (*Delta, error) {
	if s.kind != r.kind || s.reach != r.reach || s.epoch != r.epoch || s.key != r.pubRaw {
		return nil, fmt.Errorf("encode delta: set of another key: %w", ErrSetMismatch)
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("encode delta: no outputs: %w", ErrInput)
	}
	padded := DeltaSize(len(outputs))
	if s.entries+uint64(padded) > s.capacity {
		return nil, fmt.Errorf("encode delta of %d entries into %d of %d: %w", padded, s.entries, s.capacity, ErrSetFull)
	}
	if s.version == math.MaxUint32 {
		return nil, fmt.Errorf("encode delta: versions exhausted: %w", ErrSetFull)
	}
	version := s.version + 1
	values := make([]uint64, len(outputs), padded)
	if err := r.filterValues(outputs, s.base, s.capacity, values); err != nil {
		return nil, fmt.Errorf("encode delta: %w", err)
	}
	padVersion := strconv.FormatUint(uint64(s.base), 10) + "." + strconv.FormatUint(uint64(version), 10)
	values = append(values, padValues(&r.seed, r.kind, r.reach, padVersion, s.capacity, padded-len(outputs))...)
	slices.Sort(values)
	k := riceParam(s.capacity, uint64(padded))
	return &Delta{
		Kind: r.kind, Reach: r.reach, Epoch: r.epoch, Base: s.base, Version: version, Capacity: uint32(s.capacity),
		Count: uint32(padded), key: r.pubRaw, k: k, data: riceEncode(values, k), values: values,
	}, nil
}

package psi

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
)

// Wire formats. Every message starts with a format version byte and a suite
// byte; integers are big-endian; strings carry a one-byte length. Decoders
// check every length against the limits below before they allocate, reject
// trailing bytes, and accept only canonical encodings, so that
// Unmarshal(Marshal(m)) == m and Marshal(Unmarshal(b)) == b.

const (
	// wireVersion 2 adds the reach to sets and deltas (keys are per
	// reach from then on); decoders refuse version 1.
	wireVersion = 2
	// suiteVOPRFRistretto255 names RFC 9497 VOPRF mode with
	// ristretto255-SHA512.
	suiteVOPRFRistretto255 = 1
)

const (
	// MaxElements caps the elements of one request (and evaluation).
	MaxElements = 1 << 20
	// MaxChunk caps the elements covered by one proof, on both sides: a
	// querier neither asks for nor accepts larger chunks, a responder
	// refuses to prove them. Each RFC 9497 composite coefficient binds
	// only its own element, so a responder can search for wrong
	// evaluations whose errors cancel in the composite (a generalised
	// birthday problem over the chunk's elements); the cap bounds the
	// lists that search may use. docs/psi.md gives the costs.
	MaxChunk = 1024
	// MinChunk is the smallest chunk a request may ask for unless the
	// whole request fits in one chunk: it bounds the proofs a responder
	// computes per element.
	MinChunk = 64
)

// ErrMalformed is returned when a message does not decode: wrong version or
// suite, a length over the limits, a bad or identity group element, a bad
// proof, trailing bytes. The sender is broken or hostile: drop the message.
var ErrMalformed = errors.New("psi: malformed message")

func malformed(what, why string) error {
	return fmt.Errorf("decode %s: %s: %w", what, why, ErrMalformed)
}

// chunks returns the number of chunks of size chunk covering n elements.
func chunks(n, chunk int) int { return (n + chunk - 1) / chunk }

// checkShape validates a count and chunk size pair.
func checkShape(n, chunk int) error {
	switch {
	case n < 1 || n > MaxElements:
		return fmt.Errorf("%d elements (want 1 to %d)", n, MaxElements)
	case chunk < 1 || chunk > MaxChunk:
		return fmt.Errorf("chunk size %d (want 1 to %d)", chunk, MaxChunk)
	case chunk < MinChunk && chunk < n:
		return fmt.Errorf("chunk size %d below %d", chunk, MinChunk)
	}
	return nil
}

// EvalRequest is a batch of blinded elements sent by a querier, declared
// for one kind and epoch, split into chunks of ChunkSize elements (the last
// one shorter) with one proof each.
type EvalRequest struct {
	Kind      string
	Epoch     uint64
	ChunkSize int
	elements  []group.Element
}

// Len returns the number of blinded elements.
func (r *EvalRequest) Len() int { return len(r.elements) }

// Evaluation is a responder's answer: one evaluated element per blinded
// element and one DLEQ proof per chunk.
type Evaluation struct {
	ChunkSize int
	elements  []group.Element
	proofs    [][proofSize]byte // c ‖ s of each chunk's proof
	// checkedReq and checkedKey record the request and key the proofs
	// were verified against (VerifyEvaluation), so that finalising under
	// the same key does not verify them again.
	checkedReq *EvalRequest
	checkedKey [PublicKeySize]byte
}

// Len returns the number of evaluated elements.
func (e *Evaluation) Len() int { return len(e.elements) }

type encoder struct{ b []byte }

func (e *encoder) u8(v byte)      { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32)   { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)   { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) bytes(v []byte) { e.b = append(e.b, v...) }
func (e *encoder) str(s string)   { e.u8(byte(len(s))); e.b = append(e.b, s...) }
func (e *encoder) elements(es []group.Element) error {
	for _, x := range es {
		b, err := x.MarshalBinaryCompress()
		if err != nil {
			return err
		}
		e.bytes(b)
	}
	return nil
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) take(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) str() string { return string(d.take(int(d.u8()))) }

// header reads and checks the version and suite bytes.
func (d *decoder) header() bool {
	return d.u8() == wireVersion && d.u8() == suiteVOPRFRistretto255 && !d.bad
}

func (d *decoder) elements(n int) ([]group.Element, error) {
	raw := d.take(n * elementSize)
	if d.bad {
		return nil, errors.New("truncated elements")
	}
	out := make([]group.Element, n)
	for i := range out {
		e, err := decodeElement(raw[i*elementSize : (i+1)*elementSize])
		if err != nil {
			return nil, fmt.Errorf("element %d: %v", i, err)
		}
		out[i] = e
	}
	return out, nil
}

// MarshalBinary encodes the request:
// version, suite, kind, epoch, chunk size (u32), count (u32), elements.
func (r *EvalRequest) MarshalBinary() ([]byte, error) {
	if err := checkShape(len(r.elements), r.ChunkSize); err != nil {
		return nil, fmt.Errorf("encode request: %v: %w", err, ErrRequest)
	}
	if err := checkName("kind", r.Kind, MaxKindLen); err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	e := encoder{b: make([]byte, 0, 20+len(r.Kind)+elementSize*len(r.elements))}
	e.u8(wireVersion)
	e.u8(suiteVOPRFRistretto255)
	e.str(r.Kind)
	e.u64(r.Epoch)
	e.u32(uint32(r.ChunkSize))
	e.u32(uint32(len(r.elements)))
	if err := e.elements(r.elements); err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return e.b, nil
}

// UnmarshalEvalRequest decodes a request, checking the limits, every
// element (never the identity) and that nothing trails.
func UnmarshalEvalRequest(b []byte) (*EvalRequest, error) {
	const what = "evaluation request"
	d := decoder{b: b}
	if !d.header() {
		return nil, malformed(what, "unknown version or suite")
	}
	r := &EvalRequest{Kind: d.str(), Epoch: d.u64(), ChunkSize: int(d.u32())}
	n := int(d.u32())
	if d.bad || checkName("kind", r.Kind, MaxKindLen) != nil {
		return nil, malformed(what, "bad header")
	}
	if err := checkShape(n, r.ChunkSize); err != nil {
		return nil, malformed(what, err.Error())
	}
	if len(d.b) != n*elementSize {
		return nil, malformed(what, "wrong length")
	}
	var err error
	if r.elements, err = d.elements(n); err != nil {
		return nil, malformed(what, err.Error())
	}
	return r, nil
}

// MarshalBinary encodes the evaluation:
// version, suite, chunk size (u32), count (u32), elements, proofs.
func (ev *Evaluation) MarshalBinary() ([]byte, error) {
	n := len(ev.elements)
	if err := checkShape(n, ev.ChunkSize); err != nil || len(ev.proofs) != chunks(n, ev.ChunkSize) {
		return nil, fmt.Errorf("encode evaluation: bad shape: %w", ErrMalformed)
	}
	e := encoder{b: make([]byte, 0, 10+elementSize*n+proofSize*len(ev.proofs))}
	e.u8(wireVersion)
	e.u8(suiteVOPRFRistretto255)
	e.u32(uint32(ev.ChunkSize))
	e.u32(uint32(n))
	if err := e.elements(ev.elements); err != nil {
		return nil, fmt.Errorf("encode evaluation: %w", err)
	}
	for _, p := range ev.proofs {
		e.bytes(p[:])
	}
	return e.b, nil
}

// UnmarshalEvaluation decodes an evaluation. It checks encodings and
// limits only: proofs are checked by Query.Finalize.
func UnmarshalEvaluation(b []byte) (*Evaluation, error) {
	const what = "evaluation"
	d := decoder{b: b}
	if !d.header() {
		return nil, malformed(what, "unknown version or suite")
	}
	ev := &Evaluation{ChunkSize: int(d.u32())}
	n := int(d.u32())
	if d.bad {
		return nil, malformed(what, "bad header")
	}
	if err := checkShape(n, ev.ChunkSize); err != nil {
		return nil, malformed(what, err.Error())
	}
	nc := chunks(n, ev.ChunkSize)
	if len(d.b) != n*elementSize+nc*proofSize {
		return nil, malformed(what, "wrong length")
	}
	var err error
	if ev.elements, err = d.elements(n); err != nil {
		return nil, malformed(what, err.Error())
	}
	ev.proofs = make([][proofSize]byte, nc)
	for i := range ev.proofs {
		copy(ev.proofs[i][:], d.take(proofSize))
		if _, _, err := parseProof(ev.proofs[i][:]); err != nil {
			return nil, malformed(what, fmt.Sprintf("proof %d: %v", i, err))
		}
	}
	return ev, nil
}

// EncodedSet is a responder's holdings of one kind, reach and epoch as a
// Golomb-coded set of padded size Padded(Capacity). Every replica builds
// the same bytes from the same holdings, seed and version.
type EncodedSet struct {
	Kind     string
	Reach    string
	Epoch    uint64
	Version  uint32
	Capacity uint32
	key      [PublicKeySize]byte
	count    uint32
	k        uint
	data     []byte
	values   []uint64 // decoded (or encoded) sorted values
}

// Delta holds entries added to a base set after it was built. Version
// numbers continue the base's: a delta extends the set whose version is
// Version-1.
type Delta struct {
	Kind     string
	Reach    string
	Epoch    uint64
	Base     uint32
	Version  uint32
	Capacity uint32
	Count    uint32
	key      [PublicKeySize]byte
	k        uint
	data     []byte
	values   []uint64
}

// Key returns the public key the set's outputs were computed with.
func (s *EncodedSet) Key() *PublicKey {
	k, err := ParsePublicKey(s.key[:])
	if err != nil {
		return nil
	}
	return k
}

// Entries returns the number of entries, padding included.
func (s *EncodedSet) Entries() int { return int(s.count) }

func (s *EncodedSet) decodeValues() ([]uint64, error) { return s.values, nil }
func (d *Delta) decodeValues() ([]uint64, error)      { return d.values, nil }

// setBody is the common tail of sets and deltas.
func encodeSetBody(e *encoder, capacity, count uint32, k uint, data []byte) {
	e.u32(capacity)
	e.u32(count)
	e.u8(byte(k))
	e.u32(uint32(len(data)))
	e.bytes(data)
}

// MarshalBinary encodes the set: version, suite, kind, reach, epoch, public key,
// set version (u32), capacity (u32), count (u32), Rice parameter (u8),
// code length (u32), code.
func (s *EncodedSet) MarshalBinary() ([]byte, error) {
	e := encoder{b: make([]byte, 0, 64+len(s.Kind)+len(s.Reach)+len(s.data))}
	e.u8(wireVersion)
	e.u8(suiteVOPRFRistretto255)
	e.str(s.Kind)
	e.str(s.Reach)
	e.u64(s.Epoch)
	e.bytes(s.key[:])
	e.u32(s.Version)
	encodeSetBody(&e, s.Capacity, s.count, s.k, s.data)
	return e.b, nil
}

// Digest returns SHA-256 of the set's encoding, the value recorded on the
// ledger so that replicas and witnesses can compare sets.
func (s *EncodedSet) Digest() [32]byte {
	b, _ := s.MarshalBinary()
	return sha256.Sum256(b)
}

// MarshalBinary encodes the delta: version, suite, kind, reach, epoch, public key,
// base version (u32), version (u32), then the same tail as a set.
func (dl *Delta) MarshalBinary() ([]byte, error) {
	e := encoder{b: make([]byte, 0, 64+len(dl.Kind)+len(dl.Reach)+len(dl.data))}
	e.u8(wireVersion)
	e.u8(suiteVOPRFRistretto255)
	e.str(dl.Kind)
	e.str(dl.Reach)
	e.u64(dl.Epoch)
	e.bytes(dl.key[:])
	e.u32(dl.Base)
	e.u32(dl.Version)
	encodeSetBody(&e, dl.Capacity, dl.Count, dl.k, dl.data)
	return e.b, nil
}

// decodeSetBody reads and fully checks the tail of a set or delta.
// wantCount, when not zero, is the count the capacity implies.
func decodeSetBody(d *decoder, what string, base bool) (capacity, count uint32, k uint, data []byte, values []uint64, err error) {
	capacity, count, k = d.u32(), d.u32(), uint(d.u8())
	dataLen := d.u32()
	if d.bad {
		return 0, 0, 0, nil, nil, malformed(what, "bad header")
	}
	if !validCapacity(uint64(capacity)) {
		return 0, 0, 0, nil, nil, malformed(what, "invalid capacity")
	}
	if base && count != uint32(Padded(int(capacity))) || count == 0 || count > capacity {
		return 0, 0, 0, nil, nil, malformed(what, "count does not fit capacity")
	}
	if k != riceParam(uint64(capacity), uint64(count)) {
		return 0, 0, 0, nil, nil, malformed(what, "wrong rice parameter")
	}
	limit := uint64(capacity)<<filterBits - 1
	lo, hi := riceBounds(uint64(count), limit, k)
	if uint64(dataLen) < lo || uint64(dataLen) > hi || uint64(len(d.b)) != uint64(dataLen) {
		return 0, 0, 0, nil, nil, malformed(what, "wrong code length")
	}
	data = d.take(int(dataLen))
	values, err = riceDecode(data, uint64(count), limit, k)
	if err != nil {
		return 0, 0, 0, nil, nil, malformed(what, err.Error())
	}
	return capacity, count, k, data, values, nil
}

func (d *decoder) key() ([PublicKeySize]byte, bool) {
	var k [PublicKeySize]byte
	raw := d.take(PublicKeySize)
	if d.bad {
		return k, false
	}
	copy(k[:], raw)
	if _, err := decodeElement(raw); err != nil {
		return k, false
	}
	return k, true
}

// UnmarshalEncodedSet decodes and checks a set: header, limits, and the
// whole code (sorted values below the modulus, no trailing bits). It
// allocates at most about 1.6 times the input's size.
func UnmarshalEncodedSet(b []byte) (*EncodedSet, error) {
	const what = "encoded set"
	d := decoder{b: b}
	if !d.header() {
		return nil, malformed(what, "unknown version or suite")
	}
	s := &EncodedSet{Kind: d.str(), Reach: d.str(), Epoch: d.u64()}
	var ok bool
	if s.key, ok = d.key(); !ok {
		return nil, malformed(what, "bad key")
	}
	s.Version = d.u32()
	if d.bad || checkName("kind", s.Kind, MaxKindLen) != nil || checkName("reach", s.Reach, MaxReachLen) != nil {
		return nil, malformed(what, "bad header")
	}
	var err error
	s.Capacity, s.count, s.k, s.data, s.values, err = decodeSetBody(&d, what, true)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// UnmarshalDelta decodes and checks a delta like UnmarshalEncodedSet.
func UnmarshalDelta(b []byte) (*Delta, error) {
	const what = "delta"
	d := decoder{b: b}
	if !d.header() {
		return nil, malformed(what, "unknown version or suite")
	}
	dl := &Delta{Kind: d.str(), Reach: d.str(), Epoch: d.u64()}
	var ok bool
	if dl.key, ok = d.key(); !ok {
		return nil, malformed(what, "bad key")
	}
	dl.Base, dl.Version = d.u32(), d.u32()
	if d.bad || checkName("kind", dl.Kind, MaxKindLen) != nil || checkName("reach", dl.Reach, MaxReachLen) != nil {
		return nil, malformed(what, "bad header")
	}
	if dl.Version <= dl.Base {
		return nil, malformed(what, "version not after base")
	}
	var err error
	dl.Capacity, dl.Count, dl.k, dl.data, dl.values, err = decodeSetBody(&d, what, false)
	if err != nil {
		return nil, err
	}
	return dl, nil
}

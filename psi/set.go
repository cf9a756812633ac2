package psi

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// Encoded sets. A set of capacity C stores values h in [0, C·2^40): h is
// the SHA-256 digest of "xborder/v1/filter" ‖ base version ‖ output, read as a 128-bit
// number x and scaled to floor(x·C / 2^88). The sorted values are
// Golomb-Rice coded: each gap in unary quotient and k-bit remainder, with
// k = floor(log2(C·2^40 / count)). A base set holds Padded(C) = C - C/8
// entries (real ones plus pseudorandom padding); deltas add entries under
// the same modulus until the total would pass C, so the false-positive rate
// per looked-up output stays below C / (C·2^40) = 2^-40 for base and deltas
// together.

const (
	// filterBits is log2 of the modulus per unit of capacity: the
	// false-positive rate per lookup is at most 2^-filterBits.
	filterBits = 40
	// MinCapacity is the smallest set capacity: small holdings are padded
	// at least this far.
	MinCapacity = 1024
	// MaxCapacity is the largest set capacity (base and deltas together).
	MaxCapacity = 1 << 24
)

// ErrSetFull is returned by EncodeDelta when the additions would take the
// set past its capacity. Build a new base set (a new version) that holds
// everything instead.
var ErrSetFull = errors.New("psi: set capacity exhausted")

// ErrSetMismatch is returned when a delta does not extend the set it is
// applied to (another key, kind, reach, epoch, capacity or base, or not the
// next version), and when Match or EncodeDelta is given a set of another
// key, kind, reach or epoch. Fetch the missing deltas or the right base set.
var ErrSetMismatch = errors.New("psi: set does not match")

// Capacity returns the capacity of a base set holding n real entries: the
// smallest value of the form j·2^s with 16 <= j < 32 (sixteen steps per
// octave, so padding costs at most 1/16) that is at least 8n/7 and at least
// MinCapacity. The base set is padded to Padded(capacity) entries and deltas
// may fill the rest. It returns 0 when n needs more than MaxCapacity.
func Capacity(n int) int {
	if n < 0 {
		return 0
	}
	need := (uint64(n)*8 + 6) / 7
	need = max(need, MinCapacity)
	s := bits.Len64(need) - 5
	j := (need + (1 << s) - 1) >> s
	c := j << s
	if c > MaxCapacity {
		return 0
	}
	return int(c)
}

// Padded returns how many entries a base set of the given capacity holds.
func Padded(capacity int) int { return capacity - capacity/8 }

// validCapacity reports whether c is a value Capacity can return.
func validCapacity(c uint64) bool {
	if c < MinCapacity || c > MaxCapacity {
		return false
	}
	s := bits.Len64(c) - 5
	return c&(1<<s-1) == 0
}

// riceParam is the Rice parameter for count values below capacity·2^40:
// floor(log2(capacity·2^40/count)), between 40 and 64.
func riceParam(capacity, count uint64) uint {
	return uint(filterBits - 1 + bits.Len64(capacity/count))
}

// filterDigest is SHA-256("xborder/v1/filter" ‖ base ‖ output) as a
// 128-bit number, base being the base set's version (4 bytes). The version
// makes two base sets of the same capacity share no values, so that
// comparing them does not tell real entries from padding.
func filterDigest(base uint32, output []byte) (hi, lo uint64) {
	h := sha256.New()
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], base)
	h.Write([]byte(filterLabel))
	h.Write(v[:])
	h.Write(output)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])
}

// reduce scales a 128-bit digest into [0, capacity·2^40):
// floor(x·capacity / 2^88), exact for capacity <= 2^24.
func reduce(hi, lo, capacity uint64) uint64 {
	c1, _ := bits.Mul64(lo, capacity)
	h1, m1 := bits.Mul64(hi, capacity)
	m1, carry := bits.Add64(m1, c1, 0)
	h1 += carry
	return h1<<filterBits | m1>>(64-filterBits)
}

// padValues returns n pseudorandom values below capacity·2^40 derived from
// the epoch seed, the kind, the reach and the set version, so every replica
// pads identically: entry i is SHA-256(K ‖ i) with
// K = HKDF-SHA256(seed, info "xborder/v1/pad|<kind>|<reach>|<version>"),
// where version is "<base>" for a base set and "<base>.<version>" for a
// delta. The reach keeps the padding of two reaches' sets apart: shared pad
// values would tell a partner that holds both sets which entries are
// padding.
func padValues(seed *Seed, kind, reach, version string, capacity uint64, n int) []uint64 {
	key, err := hkdf.Key(sha256.New, seed[:], nil, padLabel+"|"+kind+"|"+reach+"|"+version, 32)
	if err != nil {
		panic("psi: derive pad key: " + err.Error())
	}
	out := make([]uint64, n)
	var buf [40]byte
	copy(buf[:], key)
	for i := range out {
		binary.BigEndian.PutUint64(buf[32:], uint64(i))
		sum := sha256.Sum256(buf[:])
		out[i] = reduce(binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16]), capacity)
	}
	return out
}

// riceEncode codes sorted values with parameter k, most significant bit first.
func riceEncode(values []uint64, k uint) []byte {
	w := bitWriter{buf: make([]byte, 0, len(values)*int(k+2)/8+8)}
	var prev uint64
	for _, v := range values {
		d := v - prev
		prev = v
		q := d >> k
		if k == 64 {
			q = 0
		}
		for q >= 32 {
			w.write(1<<32-1, 32)
			q -= 32
		}
		// q ones then a zero.
		w.write((1<<(q+1)-1)^1, uint(q)+1)
		if k > 32 {
			w.write(d>>32&(1<<(k-32)-1), k-32)
			w.write(d&(1<<32-1), 32)
		} else {
			w.write(d&(1<<k-1), k)
		}
	}
	return w.finish()
}

// riceBounds returns the least and greatest length in bytes of the Rice
// code of count values below limit+1 with parameter k.
func riceBounds(count, limit uint64, k uint) (lo, hi uint64) {
	minBits := count * uint64(k+1)
	var maxQ uint64
	if k < 64 {
		maxQ = limit >> k
	}
	return (minBits + 7) / 8, (minBits + maxQ + 7) / 8
}

// riceDecode decodes exactly count sorted values below limit+1 from data,
// which must hold nothing else (the final byte's unused bits are zero).
// The caller checks len(data) against riceBounds first, which bounds the
// allocation by the input size.
func riceDecode(data []byte, count, limit uint64, k uint) ([]uint64, error) {
	r := bitReader{data: data}
	out := make([]uint64, count)
	var prev uint64
	for i := range out {
		var q uint64
		for {
			b, ok := r.bit()
			if !ok {
				return nil, errors.New("rice code truncated")
			}
			if b == 0 {
				break
			}
			q++
			if k == 64 || q > limit>>k {
				return nil, errors.New("rice quotient out of range")
			}
		}
		rem, ok := r.bits(k)
		if !ok {
			return nil, errors.New("rice code truncated")
		}
		var d uint64
		if k < 64 {
			d = q<<k | rem
		} else {
			d = rem
		}
		v := prev + d
		if v < prev || v > limit {
			return nil, errors.New("rice value out of range")
		}
		out[i] = v
		prev = v
	}
	if !r.done() {
		return nil, errors.New("rice code has trailing bits")
	}
	return out, nil
}

type bitWriter struct {
	buf  []byte
	acc  uint64 // pending bits, right-aligned
	nacc uint   // number of pending bits (< 8 between calls)
}

// write appends the n (<= 32) low bits of v.
func (w *bitWriter) write(v uint64, n uint) {
	w.acc = w.acc<<n | v
	w.nacc += n
	for w.nacc >= 8 {
		w.nacc -= 8
		w.buf = append(w.buf, byte(w.acc>>w.nacc))
	}
	w.acc &= 1<<w.nacc - 1
}

func (w *bitWriter) finish() []byte {
	if w.nacc > 0 {
		w.buf = append(w.buf, byte(w.acc<<(8-w.nacc)))
		w.nacc = 0
		w.acc = 0
	}
	return w.buf
}

type bitReader struct {
	data []byte
	pos  uint64 // bit position
}

func (r *bitReader) bit() (uint64, bool) {
	if r.pos>>3 >= uint64(len(r.data)) {
		return 0, false
	}
	b := uint64(r.data[r.pos>>3]>>(7-r.pos&7)) & 1
	r.pos++
	return b, true
}

// bits reads n (<= 64) bits.
func (r *bitReader) bits(n uint) (uint64, bool) {
	if r.pos+uint64(n) > uint64(len(r.data))*8 {
		return 0, false
	}
	var v uint64
	for n > 0 {
		off := uint(r.pos & 7)
		avail := 8 - off
		take := min(avail, n)
		b := uint64(r.data[r.pos>>3]) >> (avail - take) & (1<<take - 1)
		v = v<<take | b
		n -= take
		r.pos += uint64(take)
	}
	return v, true
}

// done reports whether the reader consumed all bytes and the unused bits
// of the last byte are zero.
func (r *bitReader) done() bool {
	total := uint64(len(r.data)) * 8
	if total-r.pos >= 8 {
		return false
	}
	for r.pos < total {
		if b, _ := r.bit(); b != 0 {
			return false
		}
	}
	return true
}

// Set is a querier's (or responder's) decoded view of an encoded set and
// the deltas applied to it, ready for lookups.
type Set struct {
	kind     string
	reach    string
	epoch    uint64
	key      [PublicKeySize]byte
	capacity uint64
	base     uint32
	version  uint32
	entries  uint64
	segs     [][]uint64
}

// NewSet decodes a base set for lookups.
func NewSet(es *EncodedSet) (*Set, error) {
	vals, err := es.decodeValues()
	if err != nil {
		return nil, err
	}
	return &Set{
		kind: es.Kind, reach: es.Reach, epoch: es.Epoch, key: es.key, capacity: uint64(es.Capacity),
		base: es.Version, version: es.Version, entries: uint64(len(vals)),
		segs: [][]uint64{vals},
	}, nil
}

// Kind returns the kind of the set.
func (s *Set) Kind() string { return s.kind }

// Reach returns the reach of the set.
func (s *Set) Reach() string { return s.reach }

// Epoch returns the epoch of the set.
func (s *Set) Epoch() uint64 { return s.epoch }

// Version returns the version of the newest delta applied, or the base
// version when there is none.
func (s *Set) Version() uint32 { return s.version }

// Base returns the version of the base set.
func (s *Set) Base() uint32 { return s.base }

// Entries returns the number of entries, padding included, in the base and
// all applied deltas.
func (s *Set) Entries() int { return int(s.entries) }

// Capacity returns the set's capacity.
func (s *Set) Capacity() int { return int(s.capacity) }

// Apply adds a delta to the set. The delta must carry the same key, kind,
// reach, epoch, capacity and base, and the version right after the set's.
func (s *Set) Apply(d *Delta) error {
	if d.Kind != s.kind || d.Reach != s.reach || d.Epoch != s.epoch || d.key != s.key || uint64(d.Capacity) != s.capacity ||
		d.Base != s.base || d.Version != s.version+1 {
		return fmt.Errorf("apply delta %d to set %d (base %d): %w", d.Version, s.version, s.base, ErrSetMismatch)
	}
	if s.entries+uint64(d.Count) > s.capacity {
		return fmt.Errorf("apply delta %d: %w", d.Version, ErrSetFull)
	}
	vals, err := d.decodeValues()
	if err != nil {
		return err
	}
	s.segs = append(s.segs, vals)
	s.entries += uint64(len(vals))
	s.version = d.Version
	return nil
}

// Contains reports whether a PRF output is in the set (base or deltas).
// A non-member is reported present with probability at most 2^-40.
func (s *Set) Contains(output []byte) bool {
	hi, lo := filterDigest(s.base, output)
	return s.containsValue(reduce(hi, lo, s.capacity))
}

func (s *Set) containsValue(v uint64) bool {
	for _, seg := range s.segs {
		if _, ok := slices.BinarySearch(seg, v); ok {
			return true
		}
	}
	return false
}

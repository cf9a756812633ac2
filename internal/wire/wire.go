// Package wire implements the messages that xborder nodes exchange over the
// match, sync and follow-up protocols, and the frames that carry them.
//
// # How
//
// Every message is a protobuf message (proto3 wire format) encoded and
// decoded by hand with google.golang.org/protobuf/encoding/protowire; the
// field numbers are listed in docs/protocol.md. Hand encoding keeps the build
// free of protoc and generated code, and lets the decoders be strict: fields
// must come in increasing order, at most once, with the right wire type and
// minimal varints; zero values are never written; unknown fields, trailing
// bytes and fields over their length limit are refused. So every message has
// exactly one encoding (Marshal(Unmarshal(b)) == b), which is what the
// signatures cover. psi's binary messages (EvalRequest, Evaluation,
// EncodedSet, Delta) travel as opaque bytes fields.
//
// A frame is a uvarint length followed by that many bytes (the framing of
// libp2p's msgio varint reader). ReadFrame refuses a length over the limit of
// the message type expected before it reads the body, and grows its buffer as
// bytes arrive, so a peer cannot make the reader allocate what it has not
// sent.
//
// # Security
//
// Decoding checks form and limits only. Signatures, freshness, the pinned
// peer and the meaning of every field are checked by package exchange. Field
// values (case references, purposes) can be personal data of officers: never
// log them.
package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is returned when bytes do not decode as the message expected:
// a field out of order, repeated, unknown or of the wrong type, a length over
// a limit, a non-minimal varint, an explicit zero value, trailing bytes, or
// a frame longer than its type allows. The sender is broken or hostile: reset
// the stream.
var ErrMalformed = errors.New("malformed message")

// Limits of single fields.
const (
	IDSize        = 16   // bytes of a request ID
	HashSize      = 32   // bytes of a SHA-256 digest
	SignatureSize = 64   // bytes of an Ed25519 signature
	MaxNameLen    = 64   // bytes of an agency code, a kind, a reason code
	MaxTextLen    = 1024 // bytes of a free-text field (case reference, legal basis, offence, purpose)
	MaxCardLen    = 64 << 10
)

// Frame limits per message type: ReadFrame refuses a longer frame.
const (
	// MaxMatchRequest bounds a match request: 262,144 blinded elements
	// (32 bytes each) and the metadata.
	MaxMatchRequest = 8<<20 + 16<<10
	// MaxMatchAnswer bounds a match answer: as many evaluated elements and
	// at most one 64-byte proof per 64 elements.
	MaxMatchAnswer = 16<<20 + 16<<10
	// MaxSyncRequest bounds a sync request.
	MaxSyncRequest = 4 << 10
	// MaxSyncAnswer bounds the head of a sync answer (with the card).
	MaxSyncAnswer = MaxCardLen + 4<<10
	// MaxSegment bounds one set segment: a set of psi.MaxCapacity entries
	// takes about 88 MB.
	MaxSegment = 96 << 20
)

// MaxSegments caps the segments (a base and deltas) of one sync answer.
const MaxSegments = 4096

// MaxReaches caps the reaches a match request names and the evaluations an
// answer carries.
const MaxReaches = 8

// Status is the outcome an answer carries.
type Status uint64

const (
	// StatusOK: the request was served.
	StatusOK Status = 1
	// StatusDenied: the request was refused for the answer's reason.
	StatusDenied Status = 2
	// StatusUnavailable: the responder cannot serve now (no ledger quorum,
	// no key or set ready); retry later.
	StatusUnavailable Status = 3
)

func (s Status) valid() bool { return s >= StatusOK && s <= StatusUnavailable }

// MatchRequest is a querier's signed match request (protocol
// /xborder/match/2.0.0). Signature covers SignedBytes; BatchSHA256 is the
// SHA-256 of EvalRequest, so the signature covers the batch too. Mode and
// Reaches say under which reaches' keys the one blinded batch is to be
// evaluated.
type MatchRequest struct {
	ID          []byte   // 1: IDSize random bytes
	TimeUnixMs  uint64   // 2: the querier's clock, milliseconds since 1970
	Querier     string   // 3: the querier's agency code
	Responder   string   // 4: the responder's agency code
	Kind        string   // 5
	Epoch       uint64   // 6
	PaddedSize  uint64   // 7: the number of blinded elements
	CaseRef     string   // 8
	LegalBasis  string   // 9
	Offence     string   // 10
	Purpose     string   // 11
	Urgent      bool     // 12
	BatchSHA256 []byte   // 13: SHA-256 of EvalRequest
	Mode        string   // 14: "enforcement" or "safeguarding"
	Reaches     []string // 15, repeated: the reaches asked, at most MaxReaches
	EvalRequest []byte   // 16: psi.EvalRequest, binary
	Signature   []byte   // 17: Ed25519 over SigningContext ‖ SignedBytes
}

// MatchAnswer is a responder's signed answer. When Status is StatusOK,
// Evaluated names, per reach evaluated, the version of the set the
// responder holds and the digest of the evaluation, and Evaluations holds
// the psi.Evaluations in the same order; otherwise Reason says why, and
// Time is the responder's clock (a clock skew denial states it).
type MatchAnswer struct {
	ID          []byte      // 1: the request's ID
	TimeUnixMs  uint64      // 2: the responder's clock
	Responder   string      // 3
	Querier     string      // 4
	Status      Status      // 5
	Reason      string      // 6: a reason code (exchange lists them)
	BatchSHA256 []byte      // 7: the request's batch digest, echoed
	Evaluated   []Evaluated // 8, repeated: at most MaxReaches
	Evaluations [][]byte    // 9, repeated: psi.Evaluation, binary, one per Evaluated
	Signature   []byte      // 10
}

// Evaluated is the signed description of one evaluation of a match answer
// (an embedded message).
type Evaluated struct {
	Reach            string // 1
	SetVersion       uint64 // 2
	EvaluationSHA256 []byte // 3: SHA-256 of the evaluation
}

// SyncRequest asks an owner for its encoded set of (Kind, Epoch, Reach)
// (protocol /xborder/sync/2.0.0). Base and Version say what the querier holds (zero:
// nothing): the owner sends the deltas after Version when Base is its
// current base, else the base and every delta.
type SyncRequest struct {
	ID         []byte // 1
	TimeUnixMs uint64 // 2
	Querier    string // 3
	Owner      string // 4
	Kind       string // 5
	Epoch      uint64 // 6
	Base       uint64 // 7
	Version    uint64 // 8
	Reach      string // 9
	Signature  []byte // 10
}

// SyncAnswer heads a sync answer: Segments frames of type Segment follow it.
type SyncAnswer struct {
	ID         []byte // 1
	TimeUnixMs uint64 // 2
	Owner      string // 3
	Querier    string // 4
	Status     Status // 5
	Reason     string // 6
	Card       []byte // 7: the owner's newest signed card, binary form
	Segments   uint64 // 8
	Signature  []byte // 9
}

// Segment is one part of an encoded set, signed by the owner's agency key:
// the base (Base == Version) or a delta extending version Version-1.
type Segment struct {
	Owner     string // 1
	Kind      string // 2
	Epoch     uint64 // 3
	Base      uint64 // 4: the base version
	Version   uint64 // 5
	SHA256    []byte // 6: SHA-256 of Data
	Reach     string // 7
	Data      []byte // 8: psi.EncodedSet or psi.Delta, binary
	Signature []byte // 9
}

// Signing contexts: each signed message prefixes its signed bytes with its
// own context, so no signature can be replayed as another kind of message.
const (
	ContextMatchRequest = "xborder/v1/match-request\x00"
	ContextMatchAnswer  = "xborder/v1/match-answer\x00"
	ContextSyncRequest  = "xborder/v1/sync-request\x00"
	ContextSyncAnswer   = "xborder/v1/sync-answer\x00"
	ContextSet          = "xborder/v1/set\x00"
)

// encoder appends fields, omitting zero values.
type encoder []byte

func (e *encoder) bytes(n protowire.Number, b []byte) {
	if len(b) == 0 {
		return
	}
	*e = protowire.AppendTag(*e, n, protowire.BytesType)
	*e = protowire.AppendBytes(*e, b)
}

func (e *encoder) str(n protowire.Number, s string) {
	if s == "" {
		return
	}
	*e = protowire.AppendTag(*e, n, protowire.BytesType)
	*e = protowire.AppendString(*e, s)
}

func (e *encoder) uint(n protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	*e = protowire.AppendTag(*e, n, protowire.VarintType)
	*e = protowire.AppendVarint(*e, v)
}

func (e *encoder) bool(n protowire.Number, v bool) {
	if v {
		e.uint(n, 1)
	}
}

// field is one decoded field.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// decoder walks fields in strictly increasing order; only the fields
// listed in repeated may come several times in a row.
type decoder struct {
	msg      string
	b        []byte
	last     protowire.Number
	err      error
	repeated []protowire.Number
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("decode %s: %s: %w", d.msg, fmt.Sprintf(format, args...), ErrMalformed)
	}
}

// next returns the next field, or false at the end or on an error.
func (d *decoder) next(maxNum protowire.Number) (field, bool) {
	if d.err != nil || len(d.b) == 0 {
		return field{}, false
	}
	num, typ, n := protowire.ConsumeTag(d.b)
	if n < 0 {
		d.fail("bad tag")
		return field{}, false
	}
	if n != protowire.SizeTag(num) {
		d.fail("non-minimal tag")
		return field{}, false
	}
	if num < d.last || num == d.last && !slices.Contains(d.repeated, num) {
		d.fail("field %d out of order or repeated", num)
		return field{}, false
	}
	if num > maxNum {
		d.fail("unknown field %d", num)
		return field{}, false
	}
	d.last = num
	d.b = d.b[n:]
	f := field{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		v, m := protowire.ConsumeVarint(d.b)
		if m < 0 || m != protowire.SizeVarint(v) {
			d.fail("field %d: bad varint", num)
			return field{}, false
		}
		if v == 0 {
			d.fail("field %d: explicit zero", num)
			return field{}, false
		}
		f.v = v
		d.b = d.b[m:]
	case protowire.BytesType:
		l, m := protowire.ConsumeVarint(d.b)
		if m < 0 || m != protowire.SizeVarint(l) {
			d.fail("field %d: bad length", num)
			return field{}, false
		}
		if l == 0 {
			d.fail("field %d: explicit empty value", num)
			return field{}, false
		}
		if l > uint64(len(d.b)-m) {
			d.fail("field %d: truncated", num)
			return field{}, false
		}
		f.b = d.b[m : m+int(l)]
		d.b = d.b[m+int(l):]
	default:
		d.fail("field %d: wire type %d", num, typ)
		return field{}, false
	}
	return f, true
}

func (d *decoder) varint(f field) uint64 {
	if f.typ != protowire.VarintType {
		d.fail("field %d: want a varint", f.num)
	}
	return f.v
}

func (d *decoder) boolean(f field) bool {
	if d.varint(f) != 1 {
		d.fail("field %d: bool out of range", f.num)
	}
	return true
}

// fixed returns a copy of a bytes field of exactly size bytes.
func (d *decoder) fixed(f field, size int) []byte {
	if f.typ != protowire.BytesType || len(f.b) != size {
		d.fail("field %d: want %d bytes", f.num, size)
		return nil
	}
	return bytes.Clone(f.b)
}

// blob returns a copy of a bytes field of at most limit bytes.
func (d *decoder) blob(f field, limit int) []byte {
	if f.typ != protowire.BytesType || len(f.b) > limit {
		d.fail("field %d: want at most %d bytes", f.num, limit)
		return nil
	}
	return bytes.Clone(f.b)
}

// text returns a UTF-8 string field of at most limit bytes without control
// characters.
func (d *decoder) text(f field, limit int) string {
	if f.typ != protowire.BytesType || len(f.b) > limit || !utf8.Valid(f.b) {
		d.fail("field %d: want UTF-8 text of at most %d bytes", f.num, limit)
		return ""
	}
	for _, r := range string(f.b) {
		if r < 0x20 || r == 0x7f {
			d.fail("field %d: control character", f.num)
			return ""
		}
	}
	return string(f.b)
}

func (d *decoder) status(f field) Status {
	s := Status(d.varint(f))
	if !s.valid() {
		d.fail("field %d: status %d", f.num, s)
	}
	return s
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// WriteFrame writes b as one frame: its length as a uvarint, then b.
func WriteFrame(w io.Writer, b []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := w.Write(append(hdr[:n:n], b...)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of at most limit bytes. A longer length prefix
// fails with ErrMalformed before the body is read; a stream that ends inside
// a frame fails with io.ErrUnexpectedEOF, one that ends before it with
// io.EOF.
func ReadFrame(r io.ByteReader, limit int) ([]byte, error) {
	var n uint64
	var shift uint
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read frame: %w", err)
		}
		if i == binary.MaxVarintLen64-1 && c > 1 || i >= binary.MaxVarintLen64 {
			return nil, fmt.Errorf("read frame: length overflows: %w", ErrMalformed)
		}
		if c < 0x80 {
			if c == 0 && i > 0 {
				return nil, fmt.Errorf("read frame: non-minimal length: %w", ErrMalformed)
			}
			n |= uint64(c) << shift
			break
		}
		n |= uint64(c&0x7f) << shift
		shift += 7
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("read frame: %d bytes over the limit of %d: %w", n, limit, ErrMalformed)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(asReader(r), int64(n))); err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	if uint64(buf.Len()) != n {
		return nil, fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}

// asReader returns r as an io.Reader: a *bufio.Reader (or any ByteReader
// that is also a Reader) as it is.
func asReader(r io.ByteReader) io.Reader {
	if rr, ok := r.(io.Reader); ok {
		return rr
	}
	return byteReader{r}
}

type byteReader struct{ io.ByteReader }

func (b byteReader) Read(p []byte) (int, error) {
	for i := range p {
		c, err := b.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = c
	}
	return len(p), nil
}

// NewReader returns a buffered reader for ReadFrame.
func NewReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 32<<10) }

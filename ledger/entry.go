package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// EntryVersion is the version of the leaf layout this package writes. It is
// the first byte of every leaf (docs/ledger-format.md).
const EntryVersion = 1

// MaxField is the longest string field of a header or body, in bytes.
const MaxField = 1024

// Type is the closed set of entry types. Its text form (match_out, …) is
// what exports and filters use.
type Type uint8

// Entry types. The numbers are part of the leaf layout: never renumber.
const (
	TypeMatchOut    Type = 1  // an outbound match query was sent
	TypeMatchResult Type = 2  // the result of an outbound query (hit count, query-set commitment)
	TypeMatchIn     Type = 3  // an inbound match query was admitted (Admit)
	TypeDenial      Type = 4  // a request was refused; Outcome says why
	TypeSync        Type = 5  // an encoded set was synced to or from a partner
	TypeImport      Type = 6  // holdings were imported
	TypeRemove      Type = 7  // holdings were removed
	TypeEpoch       Type = 8  // an OPRF epoch started or retired (digest of the signed epoch keys)
	TypePolicy      Type = 9  // a policy version came into force (digest of the policy files)
	TypeLedgerRead  Type = 10 // an auditor read the ledger
	TypeExport      Type = 11 // the ledger was exported
	TypePrune       Type = 12 // bodies older than the retention were pruned
	TypePartner     Type = 13 // a partner was pinned, updated or removed
	TypeUser        Type = 14 // a local user was added, changed or removed
	TypeReplica     Type = 15 // a replica joined or left
)

var typeNames = [...]string{
	TypeMatchOut: "match_out", TypeMatchResult: "match_result", TypeMatchIn: "match_in",
	TypeDenial: "denial", TypeSync: "sync", TypeImport: "import", TypeRemove: "remove",
	TypeEpoch: "epoch", TypePolicy: "policy", TypeLedgerRead: "ledger_read", TypeExport: "export",
	TypePrune: "prune", TypePartner: "partner", TypeUser: "user", TypeReplica: "replica",
}

// Valid reports whether t is one of the defined types.
func (t Type) Valid() bool { return t > 0 && int(t) < len(typeNames) }

// String returns the text form of t, or "type(N)" for an undefined type.
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler.
func (t Type) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("marshal entry type %d: undefined", uint8(t))
	}
	return []byte(typeNames[t]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	*t = v
	return err
}

// ParseType returns the type whose text form is s.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if n != "" && n == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("parse entry type %q: unknown", s)
}

// Outcome is the closed set of entry outcomes.
type Outcome uint8

// Outcomes. The numbers are part of the leaf layout: never renumber.
const (
	OutcomeNone              Outcome = 0 // the type has no outcome
	OutcomeOK                Outcome = 1 // done or admitted
	OutcomeDenied            Outcome = 2 // refused by policy
	OutcomeDeniedBudget      Outcome = 3 // refused by Admit: a budget would be exceeded
	OutcomeDeniedReplay      Outcome = 4 // refused by Admit: request ID already seen
	OutcomeDeniedStalePolicy Outcome = 5 // refused by Admit: decided on a policy version not in force
	OutcomeFailed            Outcome = 6 // attempted and failed (partner unreachable, proof invalid)
	OutcomeStale             Outcome = 7 // answered "stale" (the partner's set was out of date)
)

var outcomeNames = [...]string{
	OutcomeNone: "none", OutcomeOK: "ok", OutcomeDenied: "denied", OutcomeDeniedBudget: "denied_budget",
	OutcomeDeniedReplay: "denied_replay", OutcomeDeniedStalePolicy: "denied_stale_policy",
	OutcomeFailed: "failed", OutcomeStale: "stale",
}

// Valid reports whether o is one of the defined outcomes.
func (o Outcome) Valid() bool { return int(o) < len(outcomeNames) }

// String returns the text form of o.
func (o Outcome) String() string {
	if o.Valid() {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// MarshalText implements encoding.TextMarshaler.
func (o Outcome) MarshalText() ([]byte, error) {
	if !o.Valid() {
		return nil, fmt.Errorf("marshal outcome %d: undefined", uint8(o))
	}
	return []byte(outcomeNames[o]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Outcome) UnmarshalText(b []byte) error {
	for i, n := range outcomeNames {
		if n == string(b) {
			*o = Outcome(i)
			return nil
		}
	}
	return fmt.Errorf("parse outcome %q: unknown", b)
}

// Digest is a 32-byte hash; its text form is lower-case hex.
type Digest [32]byte

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("parse digest: %d hex digits, want 64", len(b))
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("parse digest: %w", err)
	}
	return nil
}

// Header is the canonical, always-kept part of an entry: the leaf is its
// encoding (docs/ledger-format.md). Index, Time and BodyHash are set by the
// ledger; the caller fills in the rest (zero values are allowed).
type Header struct {
	Version          uint8     `json:"version"`            // EntryVersion
	Index            uint64    `json:"index"`              // ledger index, contiguous from 0
	Time             time.Time `json:"time"`               // the leader's time, never going backwards
	Type             Type      `json:"type"`               // what happened
	RequestID        string    `json:"request_id"`         // the query or request this is about
	Agency           string    `json:"agency"`             // this agency's code
	Partner          string    `json:"partner"`            // the partner agency's code, if any
	Kind             string    `json:"kind"`               // identifier kind
	Epoch            uint64    `json:"epoch"`              // OPRF key epoch
	SetVersion       uint64    `json:"set_version"`        // encoded-set version
	PaddedSize       uint64    `json:"padded_size"`        // padded query or set size
	Outcome          Outcome   `json:"outcome"`            // result
	HitCount         uint64    `json:"hit_count"`          // hits (match_result)
	Count            uint64    `json:"count"`              // type-specific count (rows imported, entries pruned, …)
	PolicyVersion    string    `json:"policy_version"`     // policy version the decision was made on
	Handling         string    `json:"handling"`           // handling code (H0-H3)
	Replica          string    `json:"replica"`            // replica that took the request
	Urgency          uint8     `json:"urgency"`            // 0 normal; higher is more urgent
	RequestSigDigest Digest    `json:"request_sig_digest"` // SHA-256 of the request's signature
	Digest           Digest    `json:"digest"`             // type-specific: query-set commitment, set digest, epoch keys or policy files hash
	BodyHash         Digest    `json:"body_hash"`          // SHA-256 of the salted body (BodyHash)
}

// Body is the prunable part of an entry: officers' personal data and case
// details. Only its salted hash is in the leaf.
type Body struct {
	Actor      string `json:"actor"`
	Approver   string `json:"approver"`
	Purpose    string `json:"purpose"`
	LegalBasis string `json:"legal_basis"`
	Offence    string `json:"offence"`
	CaseRef    string `json:"case_ref"`
}

// Entry is one audit record.
type Entry struct {
	Header
	Body   Body   `json:"body"`   // zero when Pruned
	Salt   Digest `json:"salt"`   // random per entry; zero when Pruned
	Pruned bool   `json:"pruned"` // the body and salt were deleted after the retention period
}

// ErrInvalid is returned for an entry or argument the ledger will not
// accept (unknown type, a field too long or not UTF-8). Fix the input.
var ErrInvalid = errors.New("invalid ledger input")

func (h *Header) strings() []string {
	return []string{h.RequestID, h.Agency, h.Partner, h.Kind, h.PolicyVersion, h.Handling, h.Replica}
}

func (b *Body) strings() []string {
	return []string{b.Actor, b.Approver, b.Purpose, b.LegalBasis, b.Offence, b.CaseRef}
}

func checkField(s string) error {
	if len(s) > MaxField {
		return fmt.Errorf("field of %d bytes, at most %d: %w", len(s), MaxField, ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("field is not UTF-8: %w", ErrInvalid)
	}
	return nil
}

// validate checks what the caller controls.
func (e *Entry) validate() error {
	if !e.Type.Valid() {
		return fmt.Errorf("entry type %d: %w", uint8(e.Type), ErrInvalid)
	}
	if !e.Outcome.Valid() {
		return fmt.Errorf("entry outcome %d: %w", uint8(e.Outcome), ErrInvalid)
	}
	for _, s := range append(e.Header.strings(), e.Body.strings()...) {
		if err := checkField(s); err != nil {
			return err
		}
	}
	return nil
}

// encodeBody lays out a body as six length-prefixed strings.
func encodeBody(b *Body) []byte { return appendBody(nil, b) }

// appendBody appends the encoding of b to dst.
func appendBody(dst []byte, b *Body) []byte {
	n := 6 * 2
	for _, s := range [...]string{b.Actor, b.Approver, b.Purpose, b.LegalBasis, b.Offence, b.CaseRef} {
		n += len(s)
	}
	dst = slices.Grow(dst, n)
	for _, s := range [...]string{b.Actor, b.Approver, b.Purpose, b.LegalBasis, b.Offence, b.CaseRef} {
		dst = appendString(dst, s)
	}
	return dst
}

func decodeBody(b []byte) (Body, error) {
	var s [6]string
	var err error
	for i := range s {
		if s[i], b, err = readString(b); err != nil {
			return Body{}, err
		}
	}
	if len(b) != 0 {
		return Body{}, errTrailing
	}
	return Body{s[0], s[1], s[2], s[3], s[4], s[5]}, nil
}

// bodyDomain separates body hashes from every other hash of the system.
const bodyDomain = "xborder/v1/ledger-body\x00"

// BodyHash returns SHA-256(bodyDomain || salt || encoded body): the value of
// Header.BodyHash.
func BodyHash(salt Digest, b Body) Digest {
	return bodyHash(append(salt[:], encodeBody(&b)...))
}

// bodyHash hashes salt || encoded body, as the body record stores them.
func bodyHash(saltBody []byte) Digest {
	h := sha256.New()
	h.Write([]byte(bodyDomain))
	h.Write(saltBody)
	var d Digest
	h.Sum(d[:0])
	return d
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

var (
	errShort    = errors.New("truncated")
	errTrailing = errors.New("trailing bytes")
)

func readString(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > len(b) {
		return "", nil, errShort
	}
	if n > MaxField || !utf8.Valid(b[:n]) {
		return "", nil, errors.New("bad string field")
	}
	return string(b[:n]), b[n:], nil
}

// EncodeLeaf returns the leaf bytes of h: the exact bytes whose RFC 6962
// leaf hash is in the tree. The layout is in docs/ledger-format.md.
func EncodeLeaf(h *Header) []byte {
	b := make([]byte, 0, 256)
	b = append(b, h.Version)
	b = binary.BigEndian.AppendUint64(b, h.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time.UnixNano()))
	b = append(b, byte(h.Type))
	b = appendString(b, h.RequestID)
	b = appendString(b, h.Agency)
	b = appendString(b, h.Partner)
	b = appendString(b, h.Kind)
	b = binary.BigEndian.AppendUint64(b, h.Epoch)
	b = binary.BigEndian.AppendUint64(b, h.SetVersion)
	b = binary.BigEndian.AppendUint64(b, h.PaddedSize)
	b = append(b, byte(h.Outcome))
	b = binary.BigEndian.AppendUint64(b, h.HitCount)
	b = binary.BigEndian.AppendUint64(b, h.Count)
	b = appendString(b, h.PolicyVersion)
	b = appendString(b, h.Handling)
	b = appendString(b, h.Replica)
	b = append(b, h.Urgency)
	b = append(b, h.RequestSigDigest[:]...)
	b = append(b, h.Digest[:]...)
	b = append(b, h.BodyHash[:]...)
	return b
}

// DecodeLeaf parses leaf bytes written by EncodeLeaf. It rejects any other
// version, undefined types and outcomes, and trailing bytes, so that
// EncodeLeaf(DecodeLeaf(b)) == b for every b it accepts.
func DecodeLeaf(b []byte) (Header, error) {
	var h Header
	fail := func(err error) (Header, error) { return Header{}, fmt.Errorf("decode leaf: %w", err) }
	u64 := func() uint64 {
		if len(b) < 8 {
			b = nil
			return 0
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v
	}
	if len(b) < 1+8+8+1 {
		return fail(errShort)
	}
	h.Version = b[0]
	if h.Version != EntryVersion {
		return fail(fmt.Errorf("entry version %d, want %d", h.Version, EntryVersion))
	}
	b = b[1:]
	h.Index = u64()
	h.Time = time.Unix(0, int64(u64())).UTC()
	h.Type = Type(b[0])
	b = b[1:]
	if !h.Type.Valid() {
		return fail(fmt.Errorf("undefined entry type %d", uint8(h.Type)))
	}
	var err error
	for _, p := range []*string{&h.RequestID, &h.Agency, &h.Partner, &h.Kind} {
		if *p, b, err = readString(b); err != nil {
			return fail(err)
		}
	}
	if len(b) < 8*3+1+8*2 {
		return fail(errShort)
	}
	h.Epoch, h.SetVersion, h.PaddedSize = u64(), u64(), u64()
	h.Outcome = Outcome(b[0])
	b = b[1:]
	if !h.Outcome.Valid() {
		return fail(fmt.Errorf("undefined outcome %d", uint8(h.Outcome)))
	}
	h.HitCount, h.Count = u64(), u64()
	for _, p := range []*string{&h.PolicyVersion, &h.Handling, &h.Replica} {
		if *p, b, err = readString(b); err != nil {
			return fail(err)
		}
	}
	if len(b) != 1+32*3 {
		if len(b) < 1+32*3 {
			return fail(errShort)
		}
		return fail(errTrailing)
	}
	h.Urgency = b[0]
	copy(h.RequestSigDigest[:], b[1:33])
	copy(h.Digest[:], b[33:65])
	copy(h.BodyHash[:], b[65:97])
	return h, nil
}

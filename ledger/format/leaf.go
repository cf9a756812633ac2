package format

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Header is the canonical, always-kept part of an entry: the leaf is its
// encoding (docs/ledger-format.md). The ledger sets Index, Time and
// BodyHash; its caller fills in the rest (zero values are allowed).
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
	// Mode is the query mode of match_out, match_in, match_result and their
	// denials ("enforcement" or "safeguarding"); empty elsewhere and in
	// version 1 leaves.
	Mode string `json:"mode,omitempty"`
	// Reaches are the reaches a match evaluated or asked, or the reach of a
	// sync or set digest, comma-separated in the order open, victim,
	// witness (e.g. "open,victim"); never which reach hit. Empty elsewhere
	// and in version 1 leaves.
	Reaches string `json:"reaches,omitempty"`
	// FollowupID is the follow-up ID (32 lower-case hex digits) of the
	// followup_* entries and of a follow-up's denial; empty elsewhere and
	// in version 1 and 2 leaves. RequestID is then the match request the
	// follow-up is about.
	FollowupID string `json:"followup_id,omitempty"`
}

var (
	errShort    = errors.New("truncated")
	errTrailing = errors.New("trailing bytes")
)

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// readString reads a str field (u16 length, UTF-8 bytes, at most MaxField).
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
// leaf hash is in the tree. The layout is in docs/ledger-format.md; a
// version 1 header is encoded without mode, reaches and follow-up ID, a
// version 2 header without the follow-up ID (they are empty in every leaf
// of those versions).
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
	if h.Version != EntryVersion1 {
		b = appendString(b, h.Mode)
		b = appendString(b, h.Reaches)
	}
	if h.Version != EntryVersion1 && h.Version != EntryVersion2 {
		b = appendString(b, h.FollowupID)
	}
	return b
}

// DecodeLeaf parses leaf bytes written by EncodeLeaf, of version 1, 2 or 3. It
// rejects any other version, undefined types and outcomes, and trailing
// bytes, so that
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
	if h.Version != EntryVersion && h.Version != EntryVersion1 && h.Version != EntryVersion2 {
		return fail(fmt.Errorf("entry version %d, want %d to %d", h.Version, EntryVersion1, EntryVersion))
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
	if len(b) < 1+32*3 {
		return fail(errShort)
	}
	h.Urgency = b[0]
	copy(h.RequestSigDigest[:], b[1:33])
	copy(h.Digest[:], b[33:65])
	copy(h.BodyHash[:], b[65:97])
	b = b[97:]
	if h.Version != EntryVersion1 {
		for _, p := range []*string{&h.Mode, &h.Reaches} {
			if *p, b, err = readString(b); err != nil {
				return fail(err)
			}
		}
	}
	if h.Version != EntryVersion1 && h.Version != EntryVersion2 {
		if h.FollowupID, b, err = readString(b); err != nil {
			return fail(err)
		}
	}
	if len(b) != 0 {
		return fail(errTrailing)
	}
	return h, nil
}

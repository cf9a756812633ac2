package format

import (
	"crypto/sha256"
	"slices"
)

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

// EncodeBody lays out a body as six str fields, in the order of Body's
// fields (docs/ledger-format.md).
func EncodeBody(b *Body) []byte { return AppendBody(nil, b) }

// AppendBody appends EncodeBody(b) to dst.
func AppendBody(dst []byte, b *Body) []byte {
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

// DecodeBody parses a body written by EncodeBody, refusing trailing bytes.
func DecodeBody(b []byte) (Body, error) {
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

// BodyHash returns SHA-256(bodyDomain || salt || EncodeBody(b)): the value
// of Header.BodyHash.
func BodyHash(salt Digest, b Body) Digest {
	return SaltedBodyHash(append(salt[:], EncodeBody(&b)...))
}

// SaltedBodyHash is BodyHash of a salt and encoded body already joined
// (salt || EncodeBody(b)), as the ledger stores them.
func SaltedBodyHash(saltBody []byte) Digest {
	h := sha256.New()
	h.Write([]byte(bodyDomain))
	h.Write(saltBody)
	var d Digest
	h.Sum(d[:0])
	return d
}

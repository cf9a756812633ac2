package ident

import (
	"strings"
	"unicode"
)

// maxDocumentNumber caps the number part of a document identifier. ICAO
// machine-readable documents use at most 9 characters plus an optional
// extension; national identity numbers stay well under 30.
const maxDocumentNumber = 40

// document returns CC:NUMBER for an identity document: the ISO 3166 alpha-2
// code of the issuing country, a colon, and the document number in
// upper-case letters and digits with separators (spaces, hyphens, dots,
// slashes) removed. The value is either CC:NUMBER or a bare number issued
// by region.
func document(v, region string) (string, error) {
	cc, num := region, v
	if i := strings.IndexByte(v, ':'); i >= 0 {
		cc = strings.ToUpper(strings.TrimSpace(v[:i]))
		num = v[i+1:]
		if !isCountry(cc) {
			return "", fail(Document, ErrRegion, "issuing country before the colon is not an ISO 3166 alpha-2 code")
		}
	}
	if cc == "" {
		return "", fail(Document, ErrRegion, "no issuing country: write CC:NUMBER or give a region")
	}
	var b strings.Builder
	for _, r := range num {
		switch {
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r == '-' || r == '.' || r == '/' || r == '_' || unicode.IsSpace(r):
		default:
			return "", fail(Document, ErrSyntax, "only Latin letters and digits belong in a document number")
		}
	}
	n := b.String()
	if n == "" {
		return "", fail(Document, ErrSyntax, "no document number")
	}
	if len(n) > maxDocumentNumber {
		return "", fail(Document, ErrTooLong, "document number too long")
	}
	return cc + ":" + n, nil
}

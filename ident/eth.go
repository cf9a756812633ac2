package ident

import (
	"strings"

	"golang.org/x/crypto/sha3"
)

// eth returns "0x" and the 40 lower-case hex digits of an ethereum address
// written with or without its 0x prefix. A mixed-case address carries an
// EIP-55 checksum, which must verify; an all-lower or all-upper one carries
// none.
func eth(v string) (string, error) {
	h := v
	if len(h) >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if len(h) != 40 {
		return "", fail(ETH, ErrSyntax, "want 0x and 40 hex digits")
	}
	hasLower, hasUpper := false, false
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'f':
			hasLower = true
		case c >= 'A' && c <= 'F':
			hasUpper = true
		default:
			return "", fail(ETH, ErrSyntax, "want 0x and 40 hex digits")
		}
	}
	lower := strings.ToLower(h)
	if hasLower && hasUpper && eip55(lower) != h {
		return "", fail(ETH, ErrChecksum, "wrong checksum (EIP-55 mixed case)")
	}
	return "0x" + lower, nil
}

// eip55 returns the EIP-55 spelling of the 40 lower-case hex digits lower:
// a letter is upper case where the matching nibble of
// Keccak-256(lower) is 8 or more.
func eip55(lower string) string {
	k := sha3.NewLegacyKeccak256()
	k.Write([]byte(lower))
	sum := k.Sum(nil)
	out := []byte(lower)
	for i, c := range out {
		nibble := sum[i/2]
		if i%2 == 0 {
			nibble >>= 4
		}
		if c >= 'a' && nibble&0xf >= 8 {
			out[i] = c - 'a' + 'A'
		}
	}
	return string(out)
}

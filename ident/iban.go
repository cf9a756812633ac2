package ident

import (
	"fmt"
	"strings"
)

// ibanLengths holds the IBAN length of each country of the SWIFT IBAN
// registry that this package checks. An IBAN of another ISO 3166 country
// gets the general rules only (15 to 34 characters, mod-97).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
	"BG": 22, "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28,
	"CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
	"FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
	"GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23,
	"IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
	"LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22,
	"MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
	"PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
	"SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// iban returns an IBAN without spaces or hyphens, in upper case, after
// checking its country, its length for that country and its mod-97 check
// digits (ISO 13616). A leading "IBAN" label is removed.
func iban(v string) (string, error) {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == ' ' || r == '-' || r == '.':
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		default:
			return "", fail(IBAN, ErrSyntax, "only letters, digits and spaces belong in an IBAN")
		}
	}
	s := strings.TrimPrefix(b.String(), "IBAN")
	if len(s) < 4 || !isUpper(s[0]) || !isUpper(s[1]) || !isDigit(s[2]) || !isDigit(s[3]) {
		return "", fail(IBAN, ErrSyntax, "want a country code and two check digits first")
	}
	cc := s[:2]
	if !isCountry(cc) {
		return "", fail(IBAN, ErrSyntax, "not an ISO 3166 country code: "+cc)
	}
	if n, ok := ibanLengths[cc]; ok && len(s) != n {
		return "", fail(IBAN, ErrSyntax, fmt.Sprintf("wrong length for %s (%d characters, want %d)", cc, len(s), n))
	}
	if len(s) < 15 || len(s) > 34 {
		return "", fail(IBAN, ErrSyntax, fmt.Sprintf("wrong length (%d characters, want 15 to 34)", len(s)))
	}
	if mod97(s[4:]+s[:4]) != 1 {
		return "", fail(IBAN, ErrChecksum, "wrong checksum (mod-97)")
	}
	return s, nil
}

// mod97 returns s mod 97, where s is read as the decimal number that
// replaces each letter by its value (A=10 ... Z=35), as ISO 7064 MOD 97-10
// does. s holds only digits and upper-case letters.
func mod97(s string) int {
	r := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	return r
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

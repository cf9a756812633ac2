package ident

import (
	"strings"
	"unicode"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// emailDomain maps a domain to its IDNA A-label form as a DNS lookup would
// (UTS #46 mapping, lower case, punycode), and validates it.
var emailDomain = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.ValidateLabels(true),
	idna.StrictDomainName(true),
	idna.VerifyDNSLength(true),
	idna.CheckJoiners(true),
)

// joinerRules checks IDNA2008's CONTEXTJ rules (RFC 5892, appendix A) on
// each dot-separated part of a string, and nothing else: a ZERO WIDTH
// NON-JOINER only after a virama or between letters that join across it
// (Arabic, Syriac, ...), a ZERO WIDTH JOINER only after a virama.
var joinerRules = idna.New(idna.CheckJoiners(true))

// isJoiner reports whether r is ZERO WIDTH NON-JOINER or ZERO WIDTH JOINER.
func isJoiner(r rune) bool { return r == '\u200c' || r == '\u200d' }

// joinersFit reports whether s holds no joiner, or only joiners that the
// CONTEXTJ rules allow where they stand.
func joinersFit(s string) bool {
	if !strings.ContainsFunc(s, isJoiner) {
		return true
	}
	_, err := joinerRules.ToUnicode(s)
	return err == nil
}

// errJoiner is the error of a joiner where CONTEXTJ forbids it: refused,
// never deleted, since deleting it may turn one mailbox into another.
func errJoiner(side string) error {
	return fail(Email, ErrSyntax, "a zero-width joiner or non-joiner "+side+
		" where IDNA2008 (CONTEXTJ) does not allow one: remove it at the source if it is a typing slip")
}

// email returns local@domain with the whole address in lower case and the
// domain as an IDNA A-label. The local part may hold Unicode (RFC 6531) but
// no quoting, comments, white space or the characters that only quoting
// allows. Provider-specific rules (dots and +tags at some providers) are
// not applied: they are not the same everywhere.
func email(v string) (string, error) {
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return "", fail(Email, ErrSyntax, "no @")
	}
	local, domain := v[:at], v[at+1:]
	if local == "" {
		return "", fail(Email, ErrSyntax, "nothing before the @")
	}
	if domain == "" {
		return "", fail(Email, ErrSyntax, "no domain after the @")
	}
	for range 4 {
		// Lower case and NFKC until neither changes the local part (a
		// few characters need a second round).
		l := norm.NFKC.String(strings.ToLower(local))
		if l == local {
			break
		}
		local = l
	}
	if len(local) > 64 {
		return "", fail(Email, ErrTooLong, "too long (local part over 64 bytes)")
	}
	if !joinersFit(local) {
		return "", errJoiner("before the @")
	}
	if !joinersFit(domain) {
		return "", errJoiner("after the @")
	}
	for _, r := range local {
		if r < 0x80 {
			if !isAtext(byte(r)) && r != '.' {
				return "", fail(Email, ErrSyntax, "a character that does not belong in an address before the @")
			}
		} else if (!unicode.IsPrint(r) || unicode.IsSpace(r)) && !isJoiner(r) {
			return "", fail(Email, ErrSyntax, "a character that does not belong in an address before the @")
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "", fail(Email, ErrSyntax, "misplaced dot before the @")
	}
	d, err := emailDomain.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || d == "" {
		return "", fail(Email, ErrSyntax, "not a valid domain name after the @")
	}
	d = strings.ToLower(d)
	dot := strings.LastIndexByte(d, '.')
	if dot < 0 {
		return "", fail(Email, ErrSyntax, "domain has no top-level part")
	}
	if tld := d[dot+1:]; strings.Trim(tld, "0123456789") == "" {
		return "", fail(Email, ErrSyntax, "domain is an IP address or has a numeric top-level part")
	}
	c := local + "@" + d
	if len(c) > 254 {
		return "", fail(Email, ErrTooLong, "too long (over 254 bytes)")
	}
	return c, nil
}

// isAtext reports whether the ASCII byte c may appear unquoted in a local
// part (RFC 5322 atext), upper-case letters excepted as the caller has
// lowered them.
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

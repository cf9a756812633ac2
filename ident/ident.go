package ident

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxLen caps the length in bytes of every raw value given to [Canonical]
// and of every canonical form it returns. It is far above any real
// identifier (an E.164 number is at most 16 bytes, an IBAN 34, an e-mail
// address 254) and far below the 65,535 bytes that an OPRF input frame can
// carry.
const MaxLen = 256

// Options are the defaults that some spellings of a value need. The zero
// value is valid: no default region.
type Options struct {
	// Region is the ISO 3166 alpha-2 code (any case) of the country whose
	// conventions apply to values that do not say: national phone numbers
	// and the 00 or 011 international prefix are read as dialled there,
	// a bare document number is taken as issued there, and an address is
	// taken to be there. An explicit country in the value (+33..., FR:...,
	// ...|FR) wins over Region. Empty means none: such values are then
	// rejected with ErrRegion, except addresses, which get no country.
	Region string
	// Strict refuses the values that Check accepts with a warning (today:
	// phone numbers that are possible but not valid, ErrNotValid). False:
	// they are accepted, and Check says so.
	Strict bool
}

// Validate reports whether o.Region is empty or an ISO 3166 alpha-2 code
// that this package knows; the error has Reason ErrRegion.
func (o Options) Validate() error {
	_, err := o.region(0)
	return err
}

// region returns the upper-case region of o, "" when none is set.
func (o Options) region(k Kind) (string, error) {
	if o.Region == "" {
		return "", nil
	}
	cc := strings.ToUpper(strings.TrimSpace(o.Region))
	if !isCountry(cc) {
		return "", fail(k, ErrRegion, "region is not an ISO 3166 alpha-2 country code")
	}
	return cc, nil
}

// Canonical returns the canonical form of value as an identifier of kind k,
// or an [*Error] that says why value is not valid. Leading and trailing
// white space is ignored; values longer than [MaxLen] bytes are refused
// before they are parsed. It never panics, and it is idempotent:
// Canonical(k, c, opt) == c for every canonical form c of kind k. A value
// that [Check] accepts with a warning is accepted, or refused with the
// warning as the error under opt.Strict.
func Canonical(k Kind, value string, opt Options) (string, error) {
	c, warning, err := Check(k, value, opt)
	if err != nil {
		return "", err
	}
	if warning != nil && opt.Strict {
		return "", warning
	}
	return c, nil
}

// Check is [Canonical] that also returns a warning, an [*Error], for a
// value it accepts but that is probably wrong: today a phone number that is
// possible but not valid (Reason ErrNotValid). Under opt.Strict the
// warning is returned as well, and Canonical refuses the value.
func Check(k Kind, value string, opt Options) (c string, warning, err error) {
	if !k.valid() {
		return "", nil, &Error{Reason: ErrUnknownKind, Detail: fmt.Sprintf("unknown kind %s", k)}
	}
	region, err := opt.region(k)
	if err != nil {
		return "", nil, err
	}
	v, err := prepare(k, value)
	if err != nil {
		return "", nil, err
	}
	switch k {
	case Phone:
		var valid bool
		c, valid, err = phone(v, region)
		if err == nil && !valid {
			warning = fail(Phone, ErrNotValid, "possible but not a valid number (in no range its country has allocated): check it at its source")
		}
	case Email:
		c, err = email(v)
	case BTC:
		c, err = btc(v)
	case ETH:
		c, err = eth(v)
	case IBAN:
		c, err = iban(v)
	case Address:
		c, err = address(v, region)
	case Document:
		c, err = document(v, region)
	}
	if err != nil {
		return "", nil, err
	}
	if len(c) > MaxLen {
		return "", nil, fail(k, ErrTooLong, fmt.Sprintf("too long (canonical form over %d bytes)", MaxLen))
	}
	return c, warning, nil
}

// prepare caps, checks and normalises a raw value for every kind: valid
// UTF-8, at most MaxLen bytes, NFKC (full-width digits and letters become
// ASCII), invisible format characters (zero-width spaces, byte-order marks,
// soft hyphens, direction marks) removed, surrounding white space trimmed.
// An e-mail address keeps its zero-width joiners and non-joiners: IDNA2008
// lets them make another name, and email checks where they stand.
func prepare(k Kind, value string) (string, error) {
	if len(value) > MaxLen {
		return "", fail(k, ErrTooLong, fmt.Sprintf("too long (over %d bytes)", MaxLen))
	}
	if !utf8.ValidString(value) {
		return "", fail(k, ErrSyntax, "not valid UTF-8")
	}
	v := norm.NFKC.String(value)
	v = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) && !(k == Email && isJoiner(r)) {
			return -1
		}
		return r
	}, v)
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fail(k, ErrEmpty, "")
	}
	if len(v) > MaxLen {
		return "", fail(k, ErrTooLong, fmt.Sprintf("too long (over %d bytes once normalised)", MaxLen))
	}
	return v, nil
}

// hasSpaceOrControl reports whether s holds white space or a control
// character.
func hasSpaceOrControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return true
		}
	}
	return false
}

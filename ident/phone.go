package ident

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// phone returns the E.164 form of v. A number written with "+" (or an
// RFC 3966 "tel:+" URI) needs no region; a national number, or one dialled
// with the region's international prefix (00 from GB, 011 from US), is read
// as dialled from region. Extensions are dropped: E.164 has none. valid
// reports whether libphonenumber also calls the number valid (in a range
// its country has allocated), not only possible.
func phone(v, region string) (c string, valid bool, err error) {
	defer func() {
		// libphonenumber's port is a large third-party parser: a panic in
		// it must not take a bulk import down with it.
		if recover() != nil {
			c, valid, err = "", false, fail(Phone, ErrSyntax, "not a phone number")
		}
	}()
	c, num, err := phoneE164(v, region)
	if err != nil {
		return "", false, err
	}
	return c, phonenumbers.IsValidNumber(num), nil
}

// phoneE164 returns the E.164 form of v and the number it parsed.
func phoneE164(v, region string) (string, *phonenumbers.PhoneNumber, error) {
	international := strings.HasPrefix(v, "+") || strings.HasPrefix(strings.ToLower(v), "tel:+")
	if region == "" && !international {
		return "", nil, fail(Phone, ErrRegion, "a number without + needs a region (the country it is dialled from)")
	}
	if region != "" && !international && !phonenumbers.GetSupportedRegions()[region] {
		return "", nil, fail(Phone, ErrRegion, "region "+region+" has no numbering plan for national numbers")
	}
	num, err := phonenumbers.Parse(v, region)
	if err != nil {
		return "", nil, phoneParseError(err)
	}
	if err := phonePossible(num); err != nil {
		return "", nil, err
	}
	if ndd := phonenumbers.GetNddPrefixForRegion(phonenumbers.GetRegionCodeForCountryCode(int(num.GetCountryCode())), true); ndd != "" &&
		strings.HasPrefix(phonenumbers.GetNationalSignificantNumber(num), ndd) && !phonenumbers.IsValidNumber(num) {
		// "020 7946 09" is possible by length alone, but its trunk prefix
		// stayed in because the rest is too short: a mistyped number.
		return "", nil, fail(Phone, ErrNotPossible, "not a possible number (too short once the trunk prefix is removed)")
	}
	num.Extension = nil
	c := phonenumbers.Format(num, phonenumbers.E164)
	// The canonical form must read back as itself, whatever quirks of a
	// numbering plan the parse went through. Most numbers provably do
	// (phoneStable); the others are parsed again.
	if phoneStable(c, num) {
		return c, num, nil
	}
	again, err := phonenumbers.Parse(c, "")
	if err != nil || phonePossible(again) != nil || phonenumbers.Format(again, phonenumbers.E164) != c {
		return "", nil, fail(Phone, ErrNotPossible, "not a possible number (no stable E.164 form)")
	}
	return c, num, nil
}

// phoneStable reports whether parsing c, the E.164 form of num, would give
// num's country code and national significant number back, without
// parsing it: c is "+", the country code and the national significant
// number, all digits, so the parse of c finds no extension and extracts the
// same country code (country codes are prefix-free); what is left is the
// national significant number, from which the parse strips a national
// prefix only when the country's national-prefix-for-parsing pattern
// matches at its start. When that pattern does not match (or the country
// has none) the parse gives num's number back, whose possibility was
// checked already, so c is stable. Otherwise phoneStable returns false and
// the caller parses c again: a false is never wrong, only slower.
func phoneStable(c string, num *phonenumbers.PhoneNumber) bool {
	cc := int(num.GetCountryCode())
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	code := strconv.Itoa(cc)
	if len(c) != 1+len(code)+len(nsn) || c[0] != '+' || c[1:1+len(code)] != code || c[1+len(code):] != nsn {
		return false
	}
	for i := 1; i < len(c); i++ {
		if c[i] < '0' || c[i] > '9' {
			return false
		}
	}
	prefix, ok := nationalPrefixes()[cc]
	if !ok {
		return false
	}
	return prefix == nil || !prefix.MatchString(nsn)
}

// nationalPrefixes maps each country calling code to the pattern with
// which a parse strips a national prefix from a number of that country
// (anchored as libphonenumber anchors it), nil when the country has none.
// It is built once from libphonenumber's metadata.
var nationalPrefixes = sync.OnceValue(func() map[int]*regexp.Regexp {
	m := map[int]*regexp.Regexp{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		// Without the metadata no number is provably stable: every
		// number is parsed again.
		return m
	}
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		region := phonenumbers.GetRegionCodeForCountryCode(cc)
		for _, meta := range coll.GetMetadata() {
			if meta.GetId() != region || (region == "001" && int(meta.GetCountryCode()) != cc) {
				continue
			}
			if p := meta.GetNationalPrefixForParsing(); p != "" {
				re, err := regexp.Compile("^(?:" + p + ")")
				if err != nil {
					break
				}
				m[cc] = re
			} else {
				m[cc] = nil
			}
			break
		}
	}
	return m
})

// phonePossible accepts the numbers that libphonenumber calls possible for
// their country, except those possible only as local numbers (without their
// area code), whose E.164 form would be another number.
func phonePossible(num *phonenumbers.PhoneNumber) error {
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE:
		return nil
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return fail(Phone, ErrNotPossible, "not a possible number (a local number: add the area code)")
	case phonenumbers.INVALID_COUNTRY_CODE:
		return fail(Phone, ErrNotPossible, "not a possible number (unknown country calling code)")
	case phonenumbers.TOO_SHORT:
		return fail(Phone, ErrNotPossible, "not a possible number (too short for its country)")
	case phonenumbers.TOO_LONG:
		return fail(Phone, ErrNotPossible, "not a possible number (too long for its country)")
	}
	return fail(Phone, ErrNotPossible, "not a possible number (wrong length for its country)")
}

// phoneParseError maps the errors of phonenumbers.Parse to this package's.
func phoneParseError(err error) error {
	switch {
	case errors.Is(err, phonenumbers.ErrInvalidCountryCode):
		return fail(Phone, ErrNotPossible, "not a possible number (unknown country calling code)")
	case errors.Is(err, phonenumbers.ErrTooShortNSN), errors.Is(err, phonenumbers.ErrTooShortAfterIDD):
		return fail(Phone, ErrNotPossible, "not a possible number (too short)")
	case errors.Is(err, phonenumbers.ErrNumTooLong):
		return fail(Phone, ErrTooLong, "too long to be a phone number")
	}
	return fail(Phone, ErrSyntax, "not a phone number")
}

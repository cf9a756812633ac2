package ident

import (
	"errors"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// phone returns the E.164 form of v. A number written with "+" (or an
// RFC 3966 "tel:+" URI) needs no region; a national number, or one dialled
// with the region's international prefix (00 from GB, 011 from US), is read
// as dialled from region. Extensions are dropped: E.164 has none.
func phone(v, region string) (c string, err error) {
	defer func() {
		// libphonenumber's port is a large third-party parser: a panic in
		// it must not take a bulk import down with it.
		if recover() != nil {
			c, err = "", fail(Phone, ErrSyntax, "not a phone number")
		}
	}()
	international := strings.HasPrefix(v, "+") || strings.HasPrefix(strings.ToLower(v), "tel:+")
	if region == "" && !international {
		return "", fail(Phone, ErrRegion, "a number without + needs a region (the country it is dialled from)")
	}
	if region != "" && !international && !phonenumbers.GetSupportedRegions()[region] {
		return "", fail(Phone, ErrRegion, "region "+region+" has no numbering plan for national numbers")
	}
	num, err := phonenumbers.Parse(v, region)
	if err != nil {
		return "", phoneParseError(err)
	}
	if err := phonePossible(num); err != nil {
		return "", err
	}
	if ndd := phonenumbers.GetNddPrefixForRegion(phonenumbers.GetRegionCodeForCountryCode(int(num.GetCountryCode())), true); ndd != "" &&
		strings.HasPrefix(phonenumbers.GetNationalSignificantNumber(num), ndd) && !phonenumbers.IsValidNumber(num) {
		// "020 7946 09" is possible by length alone, but its trunk prefix
		// stayed in because the rest is too short: a mistyped number.
		return "", fail(Phone, ErrNotPossible, "not a possible number (too short once the trunk prefix is removed)")
	}
	num.Extension = nil
	c = phonenumbers.Format(num, phonenumbers.E164)
	// The canonical form must read back as itself, whatever quirks of a
	// numbering plan the parse went through.
	again, err := phonenumbers.Parse(c, "")
	if err != nil || phonePossible(again) != nil || phonenumbers.Format(again, phonenumbers.E164) != c {
		return "", fail(Phone, ErrNotPossible, "not a possible number (no stable E.164 form)")
	}
	return c, nil
}

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

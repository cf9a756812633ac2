package ident

import "errors"

// The reasons a value is not valid. [Canonical] returns them inside an
// [*Error]; test for them with errors.Is. None of them is transient: the
// value has to be corrected at its source, or the wrong kind or region was
// given.
var (
	// ErrEmpty: the value is empty or only white space. Remove the line or
	// fill it in.
	ErrEmpty = errors.New("empty")
	// ErrTooLong: the value, or its canonical form, is longer than MaxLen
	// bytes, or longer than its kind allows.
	ErrTooLong = errors.New("too long")
	// ErrUnknownKind: the kind is not one of Kinds(). Use one of the names
	// that ParseKind accepts.
	ErrUnknownKind = errors.New("unknown kind")
	// ErrChecksum: the value's check digits (IBAN mod-97, bitcoin base58check
	// or bech32, ethereum EIP-55) do not match: a typing or copying mistake.
	ErrChecksum = errors.New("wrong checksum")
	// ErrNotPossible: a phone number that libphonenumber does not consider
	// possible (wrong length for its country, unknown country code, or a
	// local number without its area code).
	ErrNotPossible = errors.New("not a possible number")
	// ErrNotValid: a phone number that libphonenumber calls possible (the
	// right length for its country) but not valid (in no range the country
	// has allocated, or not yet in its metadata). [Check] reports it as a
	// warning and [Canonical] accepts it, unless Options.Strict: such a
	// number is often a typing slip or a wrong region, and then never
	// matches. Check it at its source.
	ErrNotValid = errors.New("not a valid number")
	// ErrSyntax: the value is not written as its kind is (a character that
	// does not belong, a missing part, the wrong length or network).
	ErrSyntax = errors.New("bad syntax")
	// ErrRegion: the value needs a region (a national phone number, a bare
	// document number) and none was given, or a region or country code is
	// not an ISO 3166 alpha-2 code this package knows.
	ErrRegion = errors.New("bad or missing region")
)

// Error says why a value is not a valid identifier of its kind. It never
// contains the value itself.
type Error struct {
	Kind   Kind   // the kind asked for; zero when the kind itself is unknown
	Reason error  // one of the Err variables of this package
	Detail string // why, for a person: "wrong checksum (mod-97)"
}

// Error returns "kind: detail", for example "iban: wrong checksum (mod-97)".
func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Reason.Error()
	}
	if e.Kind == 0 {
		return msg
	}
	return e.Kind.String() + ": " + msg
}

// Unwrap returns the Reason, so errors.Is(err, ErrChecksum) works.
func (e *Error) Unwrap() error { return e.Reason }

// fail builds the error of kind k for reason with the detail text.
func fail(k Kind, reason error, detail string) *Error {
	return &Error{Kind: k, Reason: reason, Detail: detail}
}

// Package ident implements the canonical forms of the identifiers that
// xborder matches: phone numbers, e-mail addresses, bitcoin and ethereum
// addresses, IBANs, postal addresses and identity documents.
//
// Two agencies meet on an identifier only if both write it the same way, so
// every value of a [Kind] has exactly one canonical string. [Canonical]
// computes it, or returns an [*Error] whose Reason is one of the sentinel
// errors of this package and whose message says why the value is not valid
// (wrong checksum, not a possible number, too long, empty). [Check] also
// returns a warning for a value it accepts but that is probably wrong (a
// phone number possible but not valid, [ErrNotValid]); Options.Strict
// refuses such values. [Input] frames a
// canonical string, with a domain tag, a version and its kind, into the bytes
// that enter the OPRF, so equal strings of different kinds never match;
// [DummyInput] makes the padding elements of a query under the reserved
// [Dummy] kind, which no canonical form can have.
//
// The forms, as DESIGN.md ("Identifiers") fixes them and docs/identifiers.md
// spells them out with examples:
//
//	phone     E.164 (+442079460958), via libphonenumber's Go port; national
//	          spellings need Options.Region; 00/011 international prefixes are
//	          read from the region's perspective
//	email     trimmed, lower-cased, domain as IDNA A-label (punycode)
//	btc       mainnet base58check or bech32/bech32m address, checksum
//	          verified, as the address encodes itself (bech32 lower case)
//	eth       0x + 40 lower-case hex digits; EIP-55 checked when mixed case
//	iban      no spaces, upper case, length per country, mod-97 verified
//	address   NFKC, case folded, accents and punctuation removed, street
//	          types abbreviated, then |CC when the country is known
//	document  CC:NUMBER, ISO 3166 alpha-2 issuer, upper-case alphanumerics
//
// Every raw value and every canonical form is at most [MaxLen] bytes.
// Canonical never panics and is idempotent: the canonical form of a canonical
// form is itself. The package does no I/O and holds no state.
//
// # Security
//
// Canonical forms are the identifiers themselves: callers must never log
// them, and the errors of this package never contain the value they reject.
// The functions are not constant time; they run on the agency's own data
// before blinding, never on a partner's. Canonicalisation widens a match
// only as far as the rules above say (for example, addresses drop accents):
// a match is a lead for a person to check in step 2, never proof that two
// records name the same person.
package ident

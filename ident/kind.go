package ident

import (
	"fmt"
	"strings"
)

// Kind is the kind of an identifier. Its numeric value is part of the bytes
// that enter the OPRF ([Input]) and of the wire protocols, so the values
// below never change.
type Kind uint8

// The kinds of identifiers, in the order of [Kinds].
const (
	Phone    Kind = 1 // telephone number, canonical form E.164
	Email    Kind = 2 // e-mail address
	BTC      Kind = 3 // bitcoin mainnet address
	ETH      Kind = 4 // ethereum address
	IBAN     Kind = 5 // international bank account number
	Address  Kind = 6 // postal address
	Document Kind = 7 // identity document number with its issuing country
)

// Dummy is the kind code reserved for the padding elements of a query
// ([DummyInput]). No canonical form is ever of this kind: [ParseKind] does
// not accept it and [Canonical] and [Input] refuse it.
const Dummy Kind = 0xFF

var kindNames = [...]string{
	Phone:    "phone",
	Email:    "email",
	BTC:      "btc",
	ETH:      "eth",
	IBAN:     "iban",
	Address:  "address",
	Document: "document",
}

// Kinds returns the seven real kinds, in numeric order.
func Kinds() []Kind {
	return []Kind{Phone, Email, BTC, ETH, IBAN, Address, Document}
}

// valid reports whether k is one of the real kinds of [Kinds].
func (k Kind) valid() bool { return k >= Phone && k <= Document }

// String returns the name of k as [ParseKind] reads it ("phone"), "dummy"
// for [Dummy], and "kind(N)" for any other value.
func (k Kind) String() string {
	switch {
	case k.valid():
		return kindNames[k]
	case k == Dummy:
		return "dummy"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the kind named s: "phone", "email", "btc", "eth", "iban",
// "address" or "document", in any case. Any other name, "dummy" included,
// gives an [*Error] with Reason [ErrUnknownKind].
func ParseKind(s string) (Kind, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, k := range Kinds() {
		if kindNames[k] == name {
			return k, nil
		}
	}
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return 0, &Error{Reason: ErrUnknownKind,
		Detail: fmt.Sprintf("unknown kind %q (want phone, email, btc, eth, iban, address or document)", s)}
}

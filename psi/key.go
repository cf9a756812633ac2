package psi

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
)

// SuiteName is the RFC 9497 suite every key, request and set of this package
// uses, in VOPRF mode.
const SuiteName = "ristretto255-SHA512"

// SeedSize is the length of an epoch seed in bytes.
const SeedSize = 32

// Labels of the derivations of this package. They are part of the protocol:
// changing one changes every key, pad entry and filter value.
const (
	infoPrefix   = "xborder/v1"
	ratchetLabel = "xborder/v1/ratchet"
	padLabel     = "xborder/v1/pad"
	filterLabel  = "xborder/v1/filter"
)

// MaxKindLen caps the length of a kind name in keys and messages.
const MaxKindLen = 64

// MaxReachLen caps the length of a reach name in keys and messages.
const MaxReachLen = 64

// MaxAgencyLen caps the length of an agency code in key derivation.
const MaxAgencyLen = 64

var suite = oprf.SuiteRistretto255

var g = group.Ristretto255

// ErrKey is returned when a key, seed, kind, reach or agency is malformed: a
// public key that does not decode or is the identity, an empty or too long
// kind, reach or agency name, or one holding '|'. The caller must fix its configuration; retrying does
// not help.
var ErrKey = errors.New("psi: invalid key")

// Seed is an epoch seed. One seed yields the keys of every kind and reach for its
// epoch; the next epoch's seed is Next of this one. A seed is secret: erase
// it when its epoch retires.
type Seed [SeedSize]byte

// Next returns the seed of the following epoch:
// HKDF-SHA256(seed, info "xborder/v1/ratchet"). The ratchet is one way, so a
// replica that holds only the current seed cannot recompute older keys.
func (s Seed) Next() Seed {
	out, err := hkdf.Key(sha256.New, s[:], nil, ratchetLabel, SeedSize)
	if err != nil {
		// hkdf.Key fails only for a length over 255*32 bytes.
		panic("psi: ratchet seed: " + err.Error())
	}
	var n Seed
	copy(n[:], out)
	return n
}

// keyInfo is the RFC 9497 DeriveKeyPair info of the key of (agency, kind,
// epoch, reach): "xborder/v1|<agency>|<kind>|<epoch>|<reach>" with the epoch
// in decimal.
func keyInfo(agency, kind string, epoch uint64, reach string) []byte {
	return []byte(infoPrefix + "|" + agency + "|" + kind + "|" + strconv.FormatUint(epoch, 10) + "|" + reach)
}

// checkName refuses an empty or too long name, and one with a '|', which
// would make two key derivation infos ambiguous.
func checkName(what, name string, max int) error {
	if name == "" || len(name) > max || strings.ContainsRune(name, '|') {
		return fmt.Errorf("check %s name of %d bytes (want 1 to %d): %w", what, len(name), max, ErrKey)
	}
	return nil
}

// PublicKey is the public VOPRF key of one (agency, kind, epoch, reach). Queriers
// pin it and check every evaluation's proofs against it.
type PublicKey struct {
	e group.Element
}

// PublicKeySize is the length of an encoded public key.
const PublicKeySize = 32

// MarshalBinary returns the 32-byte compressed ristretto255 encoding of the
// key.
func (k *PublicKey) MarshalBinary() ([]byte, error) {
	return k.e.MarshalBinaryCompress()
}

// Equal reports whether k and o are the same key.
func (k *PublicKey) Equal(o *PublicKey) bool {
	return k != nil && o != nil && k.e.IsEqual(o.e)
}

// ParsePublicKey decodes a public key. It rejects anything but a canonical
// 32-byte encoding of a ristretto255 element other than the identity.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	e, err := decodeElement(b)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", ErrKey)
	}
	return &PublicKey{e: e}, nil
}

// decodeElement decodes one ristretto255 element and rejects the identity,
// which circl accepts.
func decodeElement(b []byte) (group.Element, error) {
	if len(b) != elementSize {
		return nil, errors.New("element of wrong length")
	}
	e := g.NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if e.IsIdentity() {
		return nil, errors.New("identity element")
	}
	return e, nil
}

const (
	elementSize = 32
	scalarSize  = 32
	proofSize   = 2 * scalarSize
)

// deriveKey derives the VOPRF key pair with RFC 9497 DeriveKeyPair.
func deriveKey(seed []byte, info []byte) (*oprf.PrivateKey, error) {
	sk, err := oprf.DeriveKey(suite, oprf.VerifiableMode, seed, info)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return sk, nil
}

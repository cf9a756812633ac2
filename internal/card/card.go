// Package card implements the signed agency card: the document by which an
// agency introduces its replicas and keys to a partner, and by which the
// partner pins it.
//
// A card names the agency (ISO 3166 alpha-2 code and name), its Ed25519
// agency public key, its replicas (libp2p peer IDs and multiaddrs), the
// public keys of its current OPRF epochs, one per (epoch, kind, reach), its
// witness key when it has one (the Ed25519 key with which its node cosigns
// partners' ledger checkpoints, C2SP tlog-cosignature), when it was issued, when it expires,
// and a sequence number. The agency key signs the card's canonical
// binary encoding (see [Card.Encode]) under its own signing context, so a
// card signature can never be mistaken for a request, an answer or a
// checkpoint signature:
//
//	signature = Ed25519(agency key, "xborder/v1/card\x00" ‖ body)
//
// Cards travel in two forms: the binary form (body ‖ 64-byte signature) for
// the wire, and a JSON text form with a fixed field order for files and
// terminals (see [Card.MarshalText]). Both parse into the same [Card]; the
// signature always covers the binary body, never the JSON bytes.
//
// A partner pins a card after checking its [Fingerprint] out of band (over
// the phone, on paper): 120 bits of SHA-256 of the agency key, printed as six
// groups of four base32 characters. A newer card signed by the same agency
// key replaces the pinned one ([Replaces]): newer means a higher sequence;
// an equal sequence is refused, so a replayed or forked card never wins.
//
// # Security
//
// Parsing checks only the form and the limits of every field; call
// [Card.Verify] before trusting anything a card says. Verify checks the
// signature, the validity period and every field again. The fingerprint is
// what binds a card to an agency: a valid signature only proves that the
// card is consistent with the key it carries. A card is public: it holds no
// secret and no personal data.
package card

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Version is the card format version, the only one Sign writes and Decode
// and Parse read. Version 3 names the reach of every epoch key (keys are
// per epoch, kind and reach) and makes the witness key optional. Versions
// 1 (no witness key) and 2 (witness key) listed keys derived before
// reaches, which no node of this version can use: Decode and Parse refuse
// them with ErrOldVersion.
const Version = 3

// SigningContext prefixes the body under the agency key's signature.
const SigningContext = "xborder/v1/card\x00"

// Limits on a card's fields; Parse and Verify refuse anything beyond them.
const (
	MaxNameLen       = 128                      // bytes of the agency name (UTF-8, no control characters)
	MaxReplicas      = 16                       // replicas per card
	MaxPeerIDLen     = 128                      // bytes of a peer ID's text form
	MaxAddrs         = 8                        // multiaddrs per replica
	MaxAddrLen       = 256                      // bytes of a multiaddr's text form
	MaxEpochKeys     = 64                       // epoch public keys per card
	MaxKindLen       = 32                       // bytes of an identifier kind
	MaxReachLen      = 32                       // bytes of a reach name
	MaxEpochKeyLen   = 256                      // bytes of an epoch public key
	MaxValidity      = 2 * 366 * 24 * time.Hour // longest span from Issued to Expires
	MaxEncodedSize   = 64 << 10                 // bytes of the binary form
	MaxTextSize      = 128 << 10                // bytes of the text form
	ClockSkew        = 2 * time.Minute          // how far Issued may lie in the future
	FingerprintBytes = 15                       // 120 bits of SHA-256
)

// Errors of Verify, Replaces and CheckFingerprint. Parse and Decode wrap
// ErrMalformed; Verify wraps ErrInvalid with the field at fault.
var (
	// ErrMalformed: the bytes are not a card of this version (truncated,
	// trailing data, bad base64 or JSON, over a limit). Ask the agency for
	// its card again.
	ErrMalformed = errors.New("malformed card")
	// ErrInvalid: a field breaks the card rules (agency code, name, counts,
	// duplicate replicas or epoch keys, validity period).
	ErrInvalid = errors.New("invalid card")
	// ErrSignature: the signature does not verify under the card's key. The
	// card was altered or not signed by its agency: refuse it.
	ErrSignature = errors.New("card signature does not verify")
	// ErrExpired: the card's expiry time has passed. Ask the agency for a
	// fresh card.
	ErrExpired = errors.New("card expired")
	// ErrNotYetValid: the card was issued further in the future than the
	// allowed clock skew. Check both clocks.
	ErrNotYetValid = errors.New("card not yet valid")
	// ErrFingerprint: the fingerprint given out of band does not match the
	// card's agency key. Do not pin the card: it may not be the agency's.
	ErrFingerprint = errors.New("card fingerprint does not match")
	// ErrOtherKey: a card meant to replace a pinned one is signed by another
	// agency key or names another agency. Pin it anew, after checking its
	// fingerprint, if the agency really changed its key.
	ErrOtherKey = errors.New("card is not by the pinned agency key")
	// ErrOldVersion: the card is of format version 1 or 2, from before
	// per-reach epoch keys. Its epoch keys are of no use: ask the agency
	// for its current card (the node re-issues it when it starts).
	// Errors wrapping it wrap ErrMalformed too.
	ErrOldVersion = errors.New("card predates per-reach epoch keys (format version 3)")
	// ErrNotNewer: a card meant to replace a pinned one has a sequence that
	// is not higher. Keep the pinned card.
	ErrNotNewer = errors.New("card is not newer than the pinned card")
)

// Card is an agency card. Times have a resolution of one second and are
// kept in UTC.
type Card struct {
	Version   int               // Version; set by Sign
	Agency    string            // ISO 3166 alpha-2 code, upper case
	Name      string            // human-readable agency name
	Key       ed25519.PublicKey // the agency's signing key; set by Sign
	Witness   ed25519.PublicKey // the witness's cosigning key; nil when the agency has none
	Replicas  []Replica         // at least one
	EpochKeys []EpochKey        // public keys of the current epochs; may be empty
	Issued    time.Time
	Expires   time.Time
	Sequence  uint64 // at least 1; higher replaces lower
	Signature []byte // set by Sign
}

// Replica is one of the agency's nodes as partners dial it.
type Replica struct {
	PeerID string   // libp2p peer ID, text form
	Addrs  []string // multiaddrs without the /p2p part, at least one
}

// EpochKey is the public key of one (epoch, kind, reach) OPRF key.
type EpochKey struct {
	Epoch uint64
	Kind  string // identifier kind: lower-case letters, digits, '-' and '_'
	Reach string // the reach ("open", "victim", "witness"): the same characters as a kind
	Key   []byte
}

// EpochKey returns the key the card lists for (epoch, kind, reach), or nil.
func (c *Card) EpochKey(epoch uint64, kind, reach string) []byte {
	for _, k := range c.EpochKeys {
		if k.Epoch == epoch && k.Kind == kind && k.Reach == reach {
			return k.Key
		}
	}
	return nil
}

// Sign sets c.Key to the public half of priv and signs c. It refuses a card
// whose fields break the rules, so that no invalid card is ever signed.
func (c *Card) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign card: private key is %d bytes; want %d", len(priv), ed25519.PrivateKeySize)
	}
	c.Key = slices.Clone(priv.Public().(ed25519.PublicKey))
	c.Version = Version
	c.Issued = c.Issued.UTC().Truncate(time.Second)
	c.Expires = c.Expires.UTC().Truncate(time.Second)
	if err := c.check(); err != nil {
		return fmt.Errorf("sign card: %w", err)
	}
	c.Signature = ed25519.Sign(priv, c.signed())
	return nil
}

// Verify checks the card's fields, its signature under its own key, and that
// now lies in its validity period (allowing ClockSkew before Issued).
func (c *Card) Verify(now time.Time) error {
	if err := c.check(); err != nil {
		return fmt.Errorf("verify card: %w", err)
	}
	if len(c.Signature) != ed25519.SignatureSize || !ed25519.Verify(c.Key, c.signed(), c.Signature) {
		return fmt.Errorf("verify card of %s: %w", c.Agency, ErrSignature)
	}
	if !now.Before(c.Expires) {
		return fmt.Errorf("verify card of %s: expired at %s: %w", c.Agency, c.Expires.Format(time.RFC3339), ErrExpired)
	}
	if c.Issued.After(now.Add(ClockSkew)) {
		return fmt.Errorf("verify card of %s: issued at %s: %w", c.Agency, c.Issued.Format(time.RFC3339), ErrNotYetValid)
	}
	return nil
}

// Fingerprint returns the card's agency-key fingerprint.
func (c *Card) Fingerprint() string { return Fingerprint(c.Key) }

// Fingerprint returns the fingerprint of an agency public key: the first
// FingerprintBytes bytes of SHA-256("xborder/v1/fingerprint\x00" ‖ key), in
// base32 (RFC 4648 alphabet), as six groups of four characters joined by
// '-', for example "7K3Q-M2XA-…".
func Fingerprint(key ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte("xborder/v1/fingerprint\x00"))
	h.Write(key)
	s := base32.StdEncoding.EncodeToString(h.Sum(nil)[:FingerprintBytes])
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String()
}

// CheckFingerprint compares a fingerprint read out of band with the card's.
// Case, spaces and dashes in given are ignored.
func (c *Card) CheckFingerprint(given string) error {
	norm := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '-' || unicode.IsSpace(r) {
				return -1
			}
			return unicode.ToUpper(r)
		}, s)
	}
	if norm(given) != norm(c.Fingerprint()) {
		return fmt.Errorf("check card of %s: %w", c.Agency, ErrFingerprint)
	}
	return nil
}

// Replaces reports, as a nil error, that next may replace the pinned card
// old: both carry the same agency key and agency code, and next has a
// higher sequence. Both cards must have been verified. The witness key may
// change with a re-pin (a card without one gains one so).
func Replaces(old, next *Card) error {
	if !bytes.Equal(old.Key, next.Key) || old.Agency != next.Agency {
		return fmt.Errorf("replace card of %s: %w", old.Agency, ErrOtherKey)
	}
	if next.Sequence <= old.Sequence {
		return fmt.Errorf("replace card of %s: sequence %d after %d: %w", old.Agency, next.Sequence, old.Sequence, ErrNotNewer)
	}
	return nil
}

// check enforces the card rules on every field but the signature.
func (c *Card) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
	}
	switch {
	case c.Version != Version:
		return bad("version %d; want %d", c.Version, Version)
	case c.Witness != nil && len(c.Witness) != ed25519.PublicKeySize:
		return bad("witness key is %d bytes; want %d", len(c.Witness), ed25519.PublicKeySize)
	case c.Witness != nil && bytes.Equal(c.Witness, c.Key):
		return bad("witness key is the agency key; want a key of its own")
	}
	if !isAgencyCode(c.Agency) {
		return bad("agency code %q is not two upper-case letters", c.Agency)
	}
	if c.Name == "" || len(c.Name) > MaxNameLen || !utf8.ValidString(c.Name) ||
		strings.IndexFunc(c.Name, notPrintable) >= 0 || strings.TrimSpace(c.Name) != c.Name {
		return bad("agency name must be 1 to %d bytes of printable UTF-8 without outer spaces", MaxNameLen)
	}
	if len(c.Key) != ed25519.PublicKeySize {
		return bad("agency key is %d bytes; want %d", len(c.Key), ed25519.PublicKeySize)
	}
	if c.Sequence == 0 {
		return bad("sequence is 0; want at least 1")
	}
	if c.Issued.IsZero() || c.Expires.IsZero() || !c.Issued.Equal(c.Issued.Truncate(time.Second)) ||
		!c.Expires.Equal(c.Expires.Truncate(time.Second)) {
		return bad("issue and expiry times must be set, in whole seconds")
	}
	if c.Issued.Unix() < 0 || c.Expires.Year() > 9999 {
		return bad("issue and expiry times must lie between 1970 and 9999")
	}
	if !c.Expires.After(c.Issued) || c.Expires.Sub(c.Issued) > MaxValidity {
		return bad("expiry must follow issue by at most %s", MaxValidity)
	}
	if len(c.Replicas) == 0 || len(c.Replicas) > MaxReplicas {
		return bad("%d replicas; want 1 to %d", len(c.Replicas), MaxReplicas)
	}
	peers := make(map[string]bool, len(c.Replicas))
	for i, r := range c.Replicas {
		if !isToken(r.PeerID, MaxPeerIDLen) || strings.HasPrefix(r.PeerID, "/") {
			return bad("replica %d: peer ID must be 1 to %d printable ASCII bytes", i, MaxPeerIDLen)
		}
		if peers[r.PeerID] {
			return bad("replica %d: peer ID listed twice", i)
		}
		peers[r.PeerID] = true
		if len(r.Addrs) == 0 || len(r.Addrs) > MaxAddrs {
			return bad("replica %d: %d addresses; want 1 to %d", i, len(r.Addrs), MaxAddrs)
		}
		for j, a := range r.Addrs {
			if !isToken(a, MaxAddrLen) || !strings.HasPrefix(a, "/") {
				return bad("replica %d address %d: want a multiaddr of at most %d printable ASCII bytes", i, j, MaxAddrLen)
			}
		}
	}
	if len(c.EpochKeys) > MaxEpochKeys {
		return bad("%d epoch keys; want at most %d", len(c.EpochKeys), MaxEpochKeys)
	}
	type ek struct {
		epoch       uint64
		kind, reach string
	}
	keys := make(map[ek]bool, len(c.EpochKeys))
	for i, k := range c.EpochKeys {
		if !isKind(k.Kind) {
			return bad("epoch key %d: kind must be 1 to %d of a-z, 0-9, '-', '_'", i, MaxKindLen)
		}
		if !isKind(k.Reach) || len(k.Reach) > MaxReachLen {
			return bad("epoch key %d: reach must be 1 to %d of a-z, 0-9, '-', '_'", i, MaxReachLen)
		}
		if len(k.Key) == 0 || len(k.Key) > MaxEpochKeyLen {
			return bad("epoch key %d: key is %d bytes; want 1 to %d", i, len(k.Key), MaxEpochKeyLen)
		}
		if keys[ek{k.Epoch, k.Kind, k.Reach}] {
			return bad("epoch key %d: epoch %d kind %s reach %s listed twice", i, k.Epoch, k.Kind, k.Reach)
		}
		keys[ek{k.Epoch, k.Kind, k.Reach}] = true
	}
	return nil
}

// notPrintable reports control and format characters, such as the
// bidirectional overrides that could make a name read as another.
func notPrintable(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

func isAgencyCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// isToken reports whether s is 1 to max bytes of printable ASCII, no spaces.
func isToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func isKind(s string) bool {
	if s == "" || len(s) > MaxKindLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

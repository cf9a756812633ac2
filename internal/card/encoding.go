package card

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The binary form, all integers big-endian:
//
//	body      = u8 version
//	            str agency ‖ str name ‖ str key
//	            u64 sequence ‖ i64 issued ‖ i64 expires   (Unix seconds)
//	            u16 n ‖ n × replica
//	            u16 m ‖ m × epochkey
//	            str witness                              (empty: none)
//	replica   = str peerID ‖ u16 k ‖ k × str addr
//	epochkey  = u64 epoch ‖ str kind ‖ str reach ‖ str key
//	str       = u16 length ‖ bytes
//	card      = body ‖ signature (64 bytes)
//
// This is version 3. Versions 1 and 2 had no reach in an epoch key
// (version 1 no witness key either); they are refused with ErrOldVersion.
//
// Every length and count is bounded by the limits of card.go, which keep it
// below 2^16. The encoding of a card is unique: Decode refuses trailing
// bytes, and the signature covers SigningContext ‖ body.

// Encode returns the binary form of a signed card.
func (c *Card) Encode() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("encode card: %w", err)
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encode card of %s: not signed: %w", c.Agency, ErrInvalid)
	}
	return append(c.body(nil), c.Signature...), nil
}

// signed returns the message the agency key signs.
func (c *Card) signed() []byte {
	return c.body([]byte(SigningContext))
}

// body appends the canonical body to b. The card must pass check.
func (c *Card) body(b []byte) []byte {
	str := func(s []byte) {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(c.Version))
	str([]byte(c.Agency))
	str([]byte(c.Name))
	str(c.Key)
	b = binary.BigEndian.AppendUint64(b, c.Sequence)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Issued.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expires.Unix()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Replicas)))
	for _, r := range c.Replicas {
		str([]byte(r.PeerID))
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.Addrs)))
		for _, a := range r.Addrs {
			str([]byte(a))
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.EpochKeys)))
	for _, k := range c.EpochKeys {
		b = binary.BigEndian.AppendUint64(b, k.Epoch)
		str([]byte(k.Kind))
		str([]byte(k.Reach))
		str(k.Key)
	}
	str(c.Witness)
	return b
}

// reader consumes the binary form; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated at %s: %w", what, ErrMalformed)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(what string) int {
	if v := r.take(2, what); v != nil {
		return int(binary.BigEndian.Uint16(v))
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if v := r.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str(what string) []byte {
	return slices.Clone(r.take(r.u16(what), what))
}

// count reads a list length and refuses one over max before anything is
// allocated for it.
func (r *reader) count(what string, max int) int {
	n := r.u16(what)
	if r.err == nil && n > max {
		r.err = fmt.Errorf("%d %s over the limit of %d: %w", n, what, max, ErrMalformed)
		return 0
	}
	return n
}

// Decode parses the binary form of a card and checks its fields. It does
// not verify the signature: call Verify.
func Decode(b []byte) (*Card, error) {
	if len(b) > MaxEncodedSize {
		return nil, fmt.Errorf("decode card: %d bytes over the limit of %d: %w", len(b), MaxEncodedSize, ErrMalformed)
	}
	r := &reader{b: b}
	c := &Card{Version: int(r.u8("version"))}
	if r.err == nil && (c.Version == 1 || c.Version == 2) {
		return nil, fmt.Errorf("decode card: version %d: %w: %w", c.Version, ErrOldVersion, ErrMalformed)
	}
	if r.err == nil && c.Version != Version {
		return nil, fmt.Errorf("decode card: version %d; want %d: %w", c.Version, Version, ErrMalformed)
	}
	c.Agency = string(r.str("agency"))
	c.Name = string(r.str("name"))
	c.Key = r.str("key")
	c.Sequence = r.u64("sequence")
	c.Issued = time.Unix(int64(r.u64("issued")), 0).UTC()
	c.Expires = time.Unix(int64(r.u64("expires")), 0).UTC()
	for n := r.count("replicas", MaxReplicas); n > 0 && r.err == nil; n-- {
		rep := Replica{PeerID: string(r.str("peer ID"))}
		for k := r.count("addresses", MaxAddrs); k > 0 && r.err == nil; k-- {
			rep.Addrs = append(rep.Addrs, string(r.str("address")))
		}
		c.Replicas = append(c.Replicas, rep)
	}
	for m := r.count("epoch keys", MaxEpochKeys); m > 0 && r.err == nil; m-- {
		k := EpochKey{Epoch: r.u64("epoch")}
		k.Kind = string(r.str("kind"))
		k.Reach = string(r.str("reach"))
		k.Key = r.str("epoch key")
		c.EpochKeys = append(c.EpochKeys, k)
	}
	if w := r.str("witness key"); len(w) > 0 {
		c.Witness = w
	}
	c.Signature = slices.Clone(r.take(ed25519.SignatureSize, "signature"))
	if r.err != nil {
		return nil, fmt.Errorf("decode card: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decode card: %d bytes after the signature: %w", len(r.b), ErrMalformed)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("decode card: %w", err)
	}
	return c, nil
}

// textFormat names the text form of a version 3 card; the older names are
// refused with ErrOldVersion.
const textFormat = "xborder-agency-card/3"

var oldTextFormats = map[string]bool{"xborder-agency-card/1": true, "xborder-agency-card/2": true}

// textCard is the text form; its field order is the order of the output.
type textCard struct {
	Format      string        `json:"format"`
	Agency      string        `json:"agency"`
	Name        string        `json:"name"`
	Fingerprint string        `json:"fingerprint"`
	Key         string        `json:"key"`
	Sequence    uint64        `json:"sequence"`
	Issued      string        `json:"issued"`
	Expires     string        `json:"expires"`
	Replicas    []textReplica `json:"replicas"`
	EpochKeys   []textKey     `json:"epoch_keys"`
	Witness     string        `json:"witness_key,omitempty"`
	Signature   string        `json:"signature"`
}

type textReplica struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

type textKey struct {
	Epoch uint64 `json:"epoch"`
	Kind  string `json:"kind"`
	Reach string `json:"reach"`
	Key   string `json:"key"`
}

var b64 = base64.StdEncoding.Strict()

// MarshalText returns the text form of a signed card: indented JSON with a
// fixed field order, keys and signature in standard base64, times in RFC
// 3339 UTC, ending in a newline. The "fingerprint" field is informative;
// Parse checks that it matches the key.
func (c *Card) MarshalText() ([]byte, error) {
	if _, err := c.Encode(); err != nil {
		return nil, err
	}
	t := textCard{
		Format:      textFormat,
		Agency:      c.Agency,
		Name:        c.Name,
		Fingerprint: c.Fingerprint(),
		Key:         b64.EncodeToString(c.Key),
		Sequence:    c.Sequence,
		Issued:      c.Issued.Format(time.RFC3339),
		Expires:     c.Expires.Format(time.RFC3339),
		Replicas:    []textReplica{},
		EpochKeys:   []textKey{},
		Signature:   b64.EncodeToString(c.Signature),
	}
	if c.Witness != nil {
		t.Witness = b64.EncodeToString(c.Witness)
	}
	for _, r := range c.Replicas {
		t.Replicas = append(t.Replicas, textReplica{PeerID: r.PeerID, Addrs: slices.Clone(r.Addrs)})
	}
	for _, k := range c.EpochKeys {
		t.EpochKeys = append(t.EpochKeys, textKey{Epoch: k.Epoch, Kind: k.Kind, Reach: k.Reach, Key: b64.EncodeToString(k.Key)})
	}
	out, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal card of %s: %w", c.Agency, err)
	}
	return append(out, '\n'), nil
}

// Parse reads the text form of a card and checks its fields. Unknown fields,
// trailing data and times that are not whole-second RFC 3339 UTC are
// refused. It does not verify the signature: call Verify.
func Parse(text []byte) (*Card, error) {
	if len(text) > MaxTextSize {
		return nil, fmt.Errorf("parse card: %d bytes over the limit of %d: %w", len(text), MaxTextSize, ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	var t textCard
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("parse card: %w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse card: data after the card: %w", ErrMalformed)
	}
	switch {
	case oldTextFormats[t.Format]:
		return nil, fmt.Errorf("parse card: format %q: %w: %w", t.Format, ErrOldVersion, ErrMalformed)
	case t.Format != textFormat:
		return nil, fmt.Errorf("parse card: format %q; want %q: %w", t.Format, textFormat, ErrMalformed)
	}
	if len(t.Replicas) > MaxReplicas || len(t.EpochKeys) > MaxEpochKeys {
		return nil, fmt.Errorf("parse card: too many replicas or epoch keys: %w", ErrMalformed)
	}
	c := &Card{Version: Version, Agency: t.Agency, Name: t.Name, Sequence: t.Sequence}
	var err error
	field := func(name string, f func() error) {
		if err == nil {
			if e := f(); e != nil {
				err = fmt.Errorf("parse card: field %s: %w: %w", name, ErrMalformed, e)
			}
		}
	}
	field("key", func() (e error) { c.Key, e = b64.DecodeString(t.Key); return })
	field("signature", func() (e error) { c.Signature, e = b64.DecodeString(t.Signature); return })
	if t.Witness != "" {
		field("witness_key", func() (e error) { c.Witness, e = b64.DecodeString(t.Witness); return })
	}
	field("issued", func() (e error) { c.Issued, e = parseTime(t.Issued); return })
	field("expires", func() (e error) { c.Expires, e = parseTime(t.Expires); return })
	for _, r := range t.Replicas {
		if len(r.Addrs) > MaxAddrs {
			return nil, fmt.Errorf("parse card: %d addresses for one replica: %w", len(r.Addrs), ErrMalformed)
		}
		rep := Replica{PeerID: r.PeerID}
		if len(r.Addrs) > 0 {
			rep.Addrs = slices.Clone(r.Addrs)
		}
		c.Replicas = append(c.Replicas, rep)
	}
	for _, k := range t.EpochKeys {
		ek := EpochKey{Epoch: k.Epoch, Kind: k.Kind, Reach: k.Reach}
		field("epoch_keys", func() (e error) { ek.Key, e = b64.DecodeString(k.Key); return })
		c.EpochKeys = append(c.EpochKeys, ek)
	}
	if err != nil {
		return nil, err
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("parse card: signature is %d bytes; want %d: %w", len(c.Signature), ed25519.SignatureSize, ErrMalformed)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("parse card: %w", err)
	}
	if t.Fingerprint != c.Fingerprint() {
		return nil, fmt.Errorf("parse card: field fingerprint does not match the key: %w", ErrMalformed)
	}
	return c, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.UTC().Format(time.RFC3339) != s {
		return time.Time{}, fmt.Errorf("time %q is not whole-second RFC 3339 UTC", s)
	}
	return t.UTC(), nil
}

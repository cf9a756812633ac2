package card

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)

// testKey returns a fixed agency key derived from a one-byte seed.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// testCard returns a valid card of agency FR signed with testKey(1).
func testCard(t testing.TB) *Card {
	t.Helper()
	c := &Card{
		Version: Version,
		Agency:  "FR",
		Name:    "Office central pour la répression de la traite des êtres humains",
		Replicas: []Replica{
			{PeerID: "12D3KooWAbCdEfGhJkLmNoPqRsTuVwXyZ1234567890abcdefghi", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}},
			{PeerID: "12D3KooWZyXwVuTsRqPoNmLkJhGfEdCbA0987654321zyxwvuts", Addrs: []string{"/ip4/10.0.0.2/tcp/4001", "/dns4/r2.example.fr/tcp/4001"}},
		},
		EpochKeys: []EpochKey{
			{Epoch: 1, Kind: "phone", Reach: "open", Key: bytes.Repeat([]byte{0xaa}, 32)},
			{Epoch: 1, Kind: "phone", Reach: "victim", Key: bytes.Repeat([]byte{0xcc}, 32)},
			{Epoch: 1, Kind: "email", Reach: "open", Key: bytes.Repeat([]byte{0xbb}, 32)},
		},
		Issued:   t0,
		Expires:  t0.Add(90 * 24 * time.Hour),
		Sequence: 1,
	}
	if err := c.Sign(testKey(1)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return c
}

func TestSignVerifyRoundTrip(t *testing.T) {
	c := testCard(t)
	if err := c.Verify(t0.Add(time.Hour)); err != nil {
		t.Fatalf("Verify of a fresh card: %v", err)
	}

	bin, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	fromBin, err := Decode(bin)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	text, err := c.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	fromText, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, text)
	}
	for name, got := range map[string]*Card{"Decode": fromBin, "Parse": fromText} {
		if err := got.Verify(t0.Add(time.Hour)); err != nil {
			t.Errorf("%s then Verify: %v", name, err)
		}
		again, err := got.Encode()
		if err != nil || !bytes.Equal(again, bin) {
			t.Errorf("%s then Encode differs from the original encoding (err %v)", name, err)
		}
		if got.Fingerprint() != c.Fingerprint() {
			t.Errorf("%s: fingerprint %s; want %s", name, got.Fingerprint(), c.Fingerprint())
		}
	}
	text2, err := fromText.MarshalText()
	if err != nil || !bytes.Equal(text, text2) {
		t.Errorf("MarshalText(Parse(text)) differs from text (err %v)", err)
	}
	if !strings.Contains(string(text), `"fingerprint": "`+c.Fingerprint()+`"`) {
		t.Errorf("text form does not show the fingerprint:\n%s", text)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := t0.Add(time.Hour)
	tests := []struct {
		name   string
		change func(c *Card)
		now    time.Time
		want   error
	}{
		{"bad signature", func(c *Card) { c.Signature[0] ^= 1 }, now, ErrSignature},
		{"altered name", func(c *Card) { c.Name = "Someone Else" }, now, ErrSignature},
		{"altered replica address", func(c *Card) { c.Replicas[0].Addrs[0] = "/ip4/192.0.2.66/tcp/4001" }, now, ErrSignature},
		{"added epoch key", func(c *Card) {
			c.EpochKeys = append(c.EpochKeys, EpochKey{Epoch: 2, Kind: "phone", Reach: "open", Key: []byte{1}})
		}, now, ErrSignature},
		{"swapped key", func(c *Card) { c.Key = testKey(2).Public().(ed25519.PublicKey) }, now, ErrSignature},
		{"expired", func(*Card) {}, t0.Add(91 * 24 * time.Hour), ErrExpired},
		{"at expiry", func(*Card) {}, t0.Add(90 * 24 * time.Hour), ErrExpired},
		{"not yet valid", func(*Card) {}, t0.Add(-ClockSkew - time.Second), ErrNotYetValid},
		{"missing signature", func(c *Card) { c.Signature = nil }, now, ErrSignature},
		{"lower-case agency", func(c *Card) { c.Agency = "fr" }, now, ErrInvalid},
		{"no replicas", func(c *Card) { c.Replicas = nil }, now, ErrInvalid},
		{"name with a bidi override", func(c *Card) { c.Name = "Police \u202eecnarF" }, now, ErrInvalid},
		{"name with a newline", func(c *Card) { c.Name = "Police\nFrance" }, now, ErrInvalid},
		{"name with outer space", func(c *Card) { c.Name = " Police" }, now, ErrInvalid},
		{"short agency key", func(c *Card) { c.Key = c.Key[:31] }, now, ErrInvalid},
		{"duplicate replica", func(c *Card) { c.Replicas[1].PeerID = c.Replicas[0].PeerID }, now, ErrInvalid},
		{"duplicate epoch key", func(c *Card) { c.EpochKeys[2].Kind = "phone" }, now, ErrInvalid},
		{"epoch key without reach", func(c *Card) { c.EpochKeys[0].Reach = "" }, now, ErrInvalid},
		{"epoch key with a bad reach", func(c *Card) { c.EpochKeys[0].Reach = "Victim" }, now, ErrInvalid},
		{"altered reach", func(c *Card) { c.EpochKeys[1].Reach = "witness" }, now, ErrSignature},
		{"sequence zero", func(c *Card) { c.Sequence = 0 }, now, ErrInvalid},
		{"too many replicas", func(c *Card) {
			for i := range MaxReplicas {
				c.Replicas = append(c.Replicas, Replica{PeerID: "p" + strings.Repeat("x", i+1), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}})
			}
		}, now, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testCard(t)
			tt.change(c)
			if err := c.Verify(tt.now); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestSignRefusesInvalid(t *testing.T) {
	c := testCard(t)
	c.Expires = c.Issued.Add(MaxValidity + time.Hour)
	if err := c.Sign(testKey(1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Sign of a card valid for too long = %v; want ErrInvalid", err)
	}
	if err := c.Sign(testKey(1)[:10]); err == nil {
		t.Fatal("Sign with a short key succeeded")
	}
}

func TestFingerprint(t *testing.T) {
	c := testCard(t)
	fp := c.Fingerprint()
	groups := strings.Split(fp, "-")
	if len(groups) != 6 {
		t.Fatalf("Fingerprint = %q; want six groups", fp)
	}
	for _, g := range groups {
		if len(g) != 4 || strings.Trim(g, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
			t.Fatalf("Fingerprint = %q; want groups of four base32 characters", fp)
		}
	}
	if Fingerprint(testKey(2).Public().(ed25519.PublicKey)) == fp {
		t.Fatal("two keys have the same fingerprint")
	}
	tests := []struct {
		given string
		want  error
	}{
		{fp, nil},
		{strings.ToLower(fp), nil},
		{strings.ReplaceAll(fp, "-", " "), nil},
		{strings.ReplaceAll(fp, "-", ""), nil},
		{Fingerprint(testKey(2).Public().(ed25519.PublicKey)), ErrFingerprint},
		{fp[:len(fp)-1], ErrFingerprint},
		{"", ErrFingerprint},
	}
	for _, tt := range tests {
		if err := c.CheckFingerprint(tt.given); !errors.Is(err, tt.want) {
			t.Errorf("CheckFingerprint(%q) = %v; want %v", tt.given, err, tt.want)
		}
	}
}

func TestReplaces(t *testing.T) {
	old := testCard(t)
	resign := func(seq uint64, key ed25519.PrivateKey, agency string) *Card {
		c := testCard(t)
		c.Sequence = seq
		c.Agency = agency
		c.Replicas = c.Replicas[:1]
		if err := c.Sign(key); err != nil {
			t.Fatalf("Sign: %v", err)
		}
		return c
	}
	old.Sequence = 5
	if err := old.Sign(testKey(1)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	tests := []struct {
		name string
		next *Card
		want error
	}{
		{"higher sequence, same key", resign(6, testKey(1), "FR"), nil},
		{"much higher sequence", resign(1000, testKey(1), "FR"), nil},
		{"same sequence", resign(5, testKey(1), "FR"), ErrNotNewer},
		{"the same card", old, ErrNotNewer},
		{"lower sequence", resign(4, testKey(1), "FR"), ErrNotNewer},
		{"other key", resign(6, testKey(2), "FR"), ErrOtherKey},
		{"other agency code", resign(6, testKey(1), "DE"), ErrOtherKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.next.Verify(t0); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if err := Replaces(old, tt.next); !errors.Is(err, tt.want) {
				t.Fatalf("Replaces = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	bin, err := testCard(t).Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", bin[:len(bin)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(bin), 0), ErrMalformed},
		{"version 2", append([]byte{2}, bin[1:]...), ErrOldVersion},
		{"version 1", append([]byte{1}, bin[1:]...), ErrOldVersion},
		{"version 4", append([]byte{4}, bin[1:]...), ErrMalformed},
		{"too large", make([]byte, MaxEncodedSize+1), ErrMalformed},
		{"lower-case agency", bytes.Replace(bin, []byte("FR"), []byte("fr"), 1), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	text, err := testCard(t).MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	s := string(text)
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"not JSON", "-----BEGIN CARD-----", ErrMalformed},
		{"unknown field", strings.Replace(s, `"format"`, `"extra": 1, "format"`, 1), ErrMalformed},
		{"trailing data", s + "{}", ErrMalformed},
		{"other format", strings.Replace(s, "xborder-agency-card/3", "xborder-agency-card/4", 1), ErrMalformed},
		{"version 2", strings.Replace(s, "xborder-agency-card/3", "xborder-agency-card/2", 1), ErrOldVersion},
		{"version 1", strings.Replace(s, "xborder-agency-card/3", "xborder-agency-card/1", 1), ErrOldVersion},
		{"witness key of the wrong size", strings.Replace(s, `"signature"`, `"witness_key": "AAAA", "signature"`, 1), ErrInvalid},
		{"fractional time", strings.Replace(s, "T02:00:00Z", "T02:00:00.5Z", 1), ErrMalformed},
		{"local time", strings.Replace(s, "T02:00:00Z", "T03:00:00+01:00", 1), ErrMalformed},
		{"bad base64", strings.Replace(s, `"signature": "`, `"signature": "!`, 1), ErrMalformed},
		{"wrong fingerprint field", strings.Replace(s, `"fingerprint": "`, `"fingerprint": "X`, 1), ErrMalformed},
		{"no replicas", strings.Replace(s, `"replicas": [`, `"replicas": null, "x": [`, 1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.in)); !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v; want %v", err, tt.want)
			}
		})
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	bin, err := testCard(f).Encode()
	if err != nil {
		f.Fatalf("Encode: %v", err)
	}
	f.Add(bin)
	f.Add(bin[:len(bin)/2])
	f.Add([]byte{Version})
	f.Add(witnessCard(f).bin)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Decode(in)
		if err != nil {
			return
		}
		out, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded card: %v", err)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("Encode(Decode(b)) != b")
		}
		_ = c.Verify(t0)
	})
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// round-trips through the text and binary forms.
func FuzzParse(f *testing.F) {
	text, err := testCard(f).MarshalText()
	if err != nil {
		f.Fatalf("MarshalText: %v", err)
	}
	f.Add(text)
	f.Add(text[:len(text)/2])
	f.Add(witnessCard(f).text)
	f.Add([]byte(`{"format":"xborder-agency-card/1"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in)
		if err != nil {
			return
		}
		out, err := c.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText of a parsed card: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(MarshalText(Parse(b))): %v", err)
		}
		b1, err1 := c.Encode()
		b2, err2 := again.Encode()
		if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("text round trip changed the card (%v, %v)", err1, err2)
		}
		_ = c.Verify(t0)
	})
}

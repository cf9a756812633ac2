package ident

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
)

func TestInputKinds(t *testing.T) {
	// The same string under every kind: all inputs differ.
	seen := map[string]Kind{}
	for _, k := range Kinds() {
		in := Input(k, "+442079460958")
		if in == nil {
			t.Fatalf("Input(%s, ...) = nil", k)
		}
		if prev, ok := seen[string(in)]; ok {
			t.Errorf("Input(%s, s) = Input(%s, s); want inputs of different kinds to differ", k, prev)
		}
		seen[string(in)] = k
	}
}

func TestInputFrame(t *testing.T) {
	got := Input(Phone, "+442079460958")
	want := append([]byte("xborder/v1\x01\x01\x00\x0d"), "+442079460958"...)
	if !bytes.Equal(got, want) {
		t.Errorf("Input(phone, +442079460958) = %q; want %q", got, want)
	}
	// No input is a prefix of another: the length frames the string.
	a, b := Input(Email, "a@b.co"), Input(Email, "a@b.com")
	if bytes.HasPrefix(b, a) || bytes.HasPrefix(a, b) {
		t.Errorf("Input(email, a@b.co) and Input(email, a@b.com) are prefixes of each other")
	}
}

func TestInputRefuses(t *testing.T) {
	tests := []struct {
		name string
		k    Kind
		s    string
	}{
		{"dummy kind", Dummy, "x"},
		{"zero kind", 0, "x"},
		{"kind 8", 8, "x"},
		{"empty", Phone, ""},
		{"too long", Address, strings.Repeat("a", MaxLen+1)},
	}
	for _, tc := range tests {
		if got := Input(tc.k, tc.s); got != nil {
			t.Errorf("Input(%s, %d bytes) = %q; want nil (%s)", tc.k, len(tc.s), got, tc.name)
		}
	}
	if got := Input(Address, strings.Repeat("a", MaxLen)); got == nil {
		t.Errorf("Input(address, MaxLen bytes) = nil; want a frame")
	}
}

func TestDummyInput(t *testing.T) {
	r := bytes.NewReader(bytes.Repeat([]byte{0xFF}, 2*DummyLen))
	d1, err := DummyInput(r)
	if err != nil {
		t.Fatalf("DummyInput: %v", err)
	}
	want := append([]byte("xborder/v1\x01\xff\x00\x20"), bytes.Repeat([]byte{0xFF}, DummyLen)...)
	if !bytes.Equal(d1, want) {
		t.Errorf("DummyInput = %q; want %q", d1, want)
	}
	kindAt := len(inputTag) + 1
	for _, k := range Kinds() {
		in := Input(k, strings.Repeat("\xff", 32))
		if in[kindAt] == byte(Dummy) {
			t.Errorf("Input(%s, ...) has the Dummy kind byte", k)
		}
		if bytes.Equal(in[len(inputTag)+2:], d1[len(inputTag)+2:]) && in[kindAt] == d1[kindAt] {
			t.Errorf("Input(%s, ...) equals a dummy", k)
		}
	}
	if _, err := DummyInput(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("DummyInput(failing reader) = nil error; want one")
	}
	if _, err := DummyInput(bytes.NewReader(make([]byte, DummyLen-1))); err == nil {
		t.Error("DummyInput(short reader) = nil error; want one")
	}
}

func TestKind(t *testing.T) {
	names := []string{"phone", "email", "btc", "eth", "iban", "address", "document"}
	ks := Kinds()
	if len(ks) != len(names) {
		t.Fatalf("Kinds() has %d kinds; want %d", len(ks), len(names))
	}
	for i, k := range ks {
		if k != Kind(i+1) || k.String() != names[i] {
			t.Errorf("Kinds()[%d] = %d %q; want %d %q", i, k, k, i+1, names[i])
		}
		for _, s := range []string{names[i], strings.ToUpper(names[i]), " " + names[i] + " "} {
			if got, err := ParseKind(s); err != nil || got != k {
				t.Errorf("ParseKind(%q) = %v, %v; want %v", s, got, err, k)
			}
		}
	}
	for _, s := range []string{"", "dummy", "phones", "kind(1)", "1", strings.Repeat("x", 100)} {
		k, err := ParseKind(s)
		if !errors.Is(err, ErrUnknownKind) || k != 0 {
			t.Errorf("ParseKind(%q) = %v, %v; want ErrUnknownKind", s, k, err)
		}
		if len(err.Error()) > 150 {
			t.Errorf("ParseKind error is %d bytes long; want it short", len(err.Error()))
		}
	}
	if Dummy.String() != "dummy" || Kind(9).String() != "kind(9)" {
		t.Errorf("String: %q %q", Dummy, Kind(9))
	}
	for _, k := range []Kind{0, 8, Dummy} {
		if _, err := Canonical(k, "x", Options{}); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("Canonical(%s, x) error = %v; want ErrUnknownKind", k, err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, r := range []string{"", "GB", "gb", " th ", "XK"} {
		if err := (Options{Region: r}).Validate(); err != nil {
			t.Errorf("Options{Region: %q}.Validate() = %v; want nil", r, err)
		}
	}
	for _, r := range []string{"UK", "G", "GBR", "ZZ", "1"} {
		if err := (Options{Region: r}).Validate(); !errors.Is(err, ErrRegion) {
			t.Errorf("Options{Region: %q}.Validate() = %v; want ErrRegion", r, err)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := Canonical(IBAN, "GB82 WEST 1234 5698 7654 33", Options{})
	if got, want := err.Error(), "iban: wrong checksum (mod-97)"; got != want {
		t.Errorf("error = %q; want %q", got, want)
	}
	_, err = Canonical(Phone, "", Options{})
	if got, want := err.Error(), "phone: empty"; got != want {
		t.Errorf("error = %q; want %q", got, want)
	}
	// No error repeats the value it rejects.
	for _, k := range Kinds() {
		for _, v := range []string{"secret-value-4242", "secret value 4242 @@ ||", "+99942424242"} {
			if _, err := Canonical(k, v, Options{Region: "GB"}); err != nil && strings.Contains(err.Error(), "4242") {
				t.Errorf("Canonical(%s, %q) error %q contains the value", k, v, err)
			}
		}
	}
}

// TestCanonicalConcurrent runs every kind from several goroutines, as a
// node's import and query paths do, so that -race sees shared state in the
// parsers (libphonenumber's metadata and caches).
func TestCanonicalConcurrent(t *testing.T) {
	values := map[Kind]string{
		Phone: "020 7946 0958", Email: "A@Example.com", BTC: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
		ETH: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", IBAN: "GB82 WEST 1234 5698 7654 32",
		Address: "10 Downing Street", Document: "GB:123",
	}
	want := map[Kind]string{}
	for k, v := range values {
		c, err := Canonical(k, v, Options{Region: "GB"})
		if err != nil {
			t.Fatalf("Canonical(%s, %q): %v", k, v, err)
		}
		want[k] = c
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 50 {
				for k, v := range values {
					if c, err := Canonical(k, v, Options{Region: "GB"}); err != nil || c != want[k] {
						errs <- fmt.Errorf("Canonical(%s, %q) = %q, %v; want %q", k, v, c, err, want[k])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

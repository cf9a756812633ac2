package ident

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzCanonical checks, for any kind, value and region, that Canonical does
// not panic, returns either a form or an *Error with one of the package's
// reasons, that forms are short valid UTF-8 and fixed points, and that
// Input frames them under their own kind.
func FuzzCanonical(f *testing.F) {
	seeds := []struct {
		k      byte
		value  string
		region string
	}{
		{1, "020 7946 0958", "GB"}, {1, "+44 20 7946 0958", ""}, {1, "011 44 20 7946 0958", "US"},
		{1, "+7 800 555 35 35", ""}, {1, "+39 06 1234 5678", ""}, {1, "tel:+1-202-555-0143;ext=1", ""},
		{2, "Alice.Smith@Example.COM", ""}, {2, "bob@münchen.de", ""}, {2, "ℌ@example.com", ""},
		{3, "1MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gX", ""}, {3, "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", ""},
		{4, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", ""},
		{5, "GB82 WEST 1234 5698 7654 32", ""},
		{6, "Hauptstraße 5", "DE"}, {6, "12 Rue de l'Église|FR", ""}, {6, "99/1 ถนนสุขุมวิท", "TH"},
		{7, "GB: 123 456 789", ""}, {7, "c01x00t47", "DE"},
		{0, "x", ""}, {0xFF, "x", ""}, {6, "\xff\xfe", ""}, {1, "", "GB"},
	}
	for _, s := range seeds {
		f.Add(s.k, s.value, s.region)
	}
	reasons := []error{ErrEmpty, ErrTooLong, ErrUnknownKind, ErrChecksum, ErrNotPossible, ErrSyntax, ErrRegion}
	f.Fuzz(func(t *testing.T, kb byte, value, region string) {
		k := Kind(kb)
		if kb < 0xF0 {
			k = Kind(kb % 8) // mostly real kinds, sometimes 0
		}
		opt := Options{Region: region}
		c, err := Canonical(k, value, opt)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Canonical(%s, %q) error %T %v; want *Error", k, value, err, err)
			}
			known := false
			for _, r := range reasons {
				known = known || errors.Is(err, r)
			}
			if !known || c != "" {
				t.Fatalf("Canonical(%s, %q) = %q, %v; want \"\" and a known reason", k, value, c, err)
			}
			return
		}
		if c == "" || len(c) > MaxLen || !utf8.ValidString(c) {
			t.Fatalf("Canonical(%s, %q) = %q; want 1 to MaxLen bytes of UTF-8", k, value, c)
		}
		again, err := Canonical(k, c, opt)
		if err != nil || again != c {
			t.Fatalf("Canonical(%s, %q) = %q, but Canonical(%s, %q) = %q, %v; want a fixed point", k, value, c, k, c, again, err)
		}
		in := Input(k, c)
		if in == nil || Kind(in[len(inputTag)+1]) != k {
			t.Fatalf("Input(%s, %q) = %q; want a frame of kind %s", k, c, in, k)
		}
	})
}

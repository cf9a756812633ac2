package ident

import (
	"strings"
	"testing"
)

func TestCountries(t *testing.T) {
	codes := strings.Fields(countries)
	if got, want := len(countrySet), 250; got != want || len(codes) != want {
		t.Fatalf("country table has %d codes (%d distinct); want %d (249 ISO 3166-1 + XK)", len(codes), got, want)
	}
	for i := 1; i < len(codes); i++ {
		if codes[i-1] >= codes[i] {
			t.Errorf("country table not sorted at %s, %s", codes[i-1], codes[i])
		}
	}
	for _, cc := range []string{"GB", "US", "TH", "DE", "XK", "AQ", "ZW"} {
		if !isCountry(cc) {
			t.Errorf("isCountry(%q) = false; want true", cc)
		}
	}
	for _, cc := range []string{"UK", "EU", "ZZ", "gb", "G", "GBR", "", "QO", "AA"} {
		if isCountry(cc) {
			t.Errorf("isCountry(%q) = true; want false", cc)
		}
	}
}

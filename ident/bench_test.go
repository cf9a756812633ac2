package ident

import (
	"testing"
)

// BenchmarkCanonical measures one typical value per kind, as a bulk import
// canonicalises them.
func BenchmarkCanonical(b *testing.B) {
	cases := []struct {
		k      Kind
		value  string
		region string
	}{
		{Phone, "020 7946 0958", "GB"},
		{Email, "Alice.Smith@Example.COM", ""},
		{BTC, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", ""},
		{ETH, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", ""},
		{IBAN, "GB82 WEST 1234 5698 7654 32", ""},
		{Address, "10 Downing Street, London SW1A 2AA", "GB"},
		{Document, "GB: 123 456 789", ""},
	}
	for _, c := range cases {
		b.Run("Kind="+c.k.String(), func(b *testing.B) {
			opt := Options{Region: c.region}
			for b.Loop() {
				if _, err := Canonical(c.k, c.value, opt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "values/s")
		})
	}
}

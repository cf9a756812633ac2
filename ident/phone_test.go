package ident

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// stableAgrees checks phoneStable against a parse of the E.164 form: when
// phoneStable says a number is stable, parsing its E.164 form again must
// give the same form, possible.
func stableAgrees(t *testing.T, v, region string) (fast bool) {
	t.Helper()
	num, err := phonenumbers.Parse(v, region)
	if err != nil || phonePossible(num) != nil {
		return false
	}
	num.Extension = nil
	c := phonenumbers.Format(num, phonenumbers.E164)
	if !phoneStable(c, num) {
		return false
	}
	again, err := phonenumbers.Parse(c, "")
	if err != nil || phonePossible(again) != nil || phonenumbers.Format(again, phonenumbers.E164) != c {
		t.Errorf("phoneStable(%q) from %q (region %s) = true; parsing it again gives %q, %v", c, v, region, phonenumbers.Format(again, phonenumbers.E164), err)
	}
	return true
}

// TestPhoneStable checks the shortcut that skips the second parse against
// the second parse itself, on example numbers of every region and type
// written in E.164, international and national form, and with the
// national prefix doubled or left in.
func TestPhoneStable(t *testing.T) {
	types := []phonenumbers.PhoneNumberType{
		phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP,
		phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL,
	}
	checked, fast := 0, 0
	for region := range phonenumbers.GetSupportedRegions() {
		ndd := phonenumbers.GetNddPrefixForRegion(region, true)
		for _, typ := range types {
			ex := phonenumbers.GetExampleNumberForType(region, typ)
			if ex == nil {
				continue
			}
			nsn := phonenumbers.GetNationalSignificantNumber(ex)
			forms := []string{
				phonenumbers.Format(ex, phonenumbers.E164),
				phonenumbers.Format(ex, phonenumbers.INTERNATIONAL),
				phonenumbers.Format(ex, phonenumbers.NATIONAL),
				nsn,
				ndd + nsn,
				ndd + ndd + nsn,
				fmt.Sprintf("+%d%s%s", ex.GetCountryCode(), ndd, nsn),
			}
			for _, v := range forms {
				checked++
				if stableAgrees(t, v, region) {
					fast++
				}
			}
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		ex := phonenumbers.GetExampleNumberForNonGeoEntity(cc)
		if ex == nil {
			continue
		}
		checked++
		if stableAgrees(t, phonenumbers.Format(ex, phonenumbers.E164), "") {
			fast++
		}
	}
	if fast < checked/2 {
		t.Errorf("phoneStable took the shortcut for %d of %d forms; want most", fast, checked)
	}
	if !stableAgrees(t, "07400 123456", "GB") {
		t.Errorf("phoneStable(+447400123456) = false; want true (a UK mobile)")
	}
}

// FuzzPhoneStable checks the shortcut against the second parse on any input.
func FuzzPhoneStable(f *testing.F) {
	for _, s := range []struct{ v, region string }{
		{"07400 123456", "GB"}, {"+44 20 7946 0958", ""}, {"0043 1 234567", "DE"},
		{"011 54 9 11 1234 5678", "US"}, {"+39 06 1234 5678", ""}, {"8 (495) 123-45-67", "RU"},
		{"+52 1 55 1234 5678", ""}, {"0 11 1234 5678", "AR"}, {"+800 1234 5678", ""},
	} {
		f.Add(s.v, s.region)
	}
	f.Fuzz(func(t *testing.T, v, region string) {
		func() {
			defer func() { _ = recover() }() // the parser's own panics are phone's concern
			stableAgrees(t, v, region)
		}()
	})
}

// BenchmarkPhone measures the canonicalisation of distinct national
// numbers, as a bulk import sees them.
func BenchmarkPhone(b *testing.B) {
	i := 0
	for b.Loop() {
		if _, err := Canonical(Phone, fmt.Sprintf("07400 %06d", i%1000000), Options{Region: "GB"}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// TestPhoneNotValid: a number that is possible (right length) but in no
// range its country has allocated is accepted with a warning, and refused
// under Options.Strict (issue 19, item 10).
func TestPhoneNotValid(t *testing.T) {
	const in, want = "496 0123", "+444960123"
	c, warn, err := Check(Phone, in, Options{Region: "GB"})
	if err != nil || c != want || !errors.Is(warn, ErrNotValid) {
		t.Errorf("Check(phone, %q, GB) = %q, %v, %v; want %q with warning ErrNotValid", in, c, warn, err, want)
	}
	var e *Error
	if !errors.As(warn, &e) || e.Kind != Phone || !strings.Contains(warn.Error(), "not a valid number") {
		t.Errorf("warning %v; want a phone *Error saying it is not a valid number", warn)
	}
	if c, err := Canonical(Phone, in, Options{Region: "GB"}); err != nil || c != want {
		t.Errorf("Canonical(phone, %q, GB) = %q, %v; want %q (accepted without Strict)", in, c, err, want)
	}
	if c, err := Canonical(Phone, in, Options{Region: "GB", Strict: true}); !errors.Is(err, ErrNotValid) || c != "" {
		t.Errorf("Canonical(phone, %q, GB, strict) = %q, %v; want ErrNotValid", in, c, err)
	}
	for _, v := range []string{"020 7946 0958", "07400 123456"} {
		c, warn, err := Check(Phone, v, Options{Region: "GB", Strict: true})
		if err != nil || warn != nil || c == "" {
			t.Errorf("Check(phone, %q, GB, strict) = %q, %v, %v; want a valid number, no warning", v, c, warn, err)
		}
	}
	// Kinds with no warning never give one.
	if _, warn, err := Check(Email, "alice@example.com", Options{Strict: true}); warn != nil || err != nil {
		t.Errorf("Check(email) = %v, %v; want no warning", warn, err)
	}
}

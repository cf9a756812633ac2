package ident

import (
	"errors"
	"strings"
	"testing"
)

// canonCase is one row of a per-kind table: value under region gives want,
// or an error whose Reason is err.
type canonCase struct {
	value  string
	region string
	want   string
	err    error
}

// runCanon checks each row of cases, and that every canonical form it gets
// is a fixed point of Canonical.
func runCanon(t *testing.T, k Kind, cases []canonCase) {
	t.Helper()
	if len(cases) < 15 {
		t.Errorf("%s table has %d cases; want at least 15", k, len(cases))
	}
	for _, tc := range cases {
		name := tc.value
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(tc.region+"/"+name, func(t *testing.T) {
			got, err := Canonical(k, tc.value, Options{Region: tc.region})
			if tc.err != nil {
				var e *Error
				if !errors.Is(err, tc.err) || !errors.As(err, &e) || e.Kind != k {
					t.Fatalf("Canonical(%s, %q, %q) = %q, %v; want error %v", k, tc.value, tc.region, got, err, tc.err)
				}
				if got != "" {
					t.Errorf("Canonical(%s, %q) = %q with an error; want \"\"", k, tc.value, got)
				}
				if !strings.HasPrefix(err.Error(), k.String()+": ") {
					t.Errorf("error %q does not start with %q", err, k.String()+": ")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Canonical(%s, %q, %q) = %q, %v; want %q", k, tc.value, tc.region, got, err, tc.want)
			}
			again, err := Canonical(k, got, Options{Region: tc.region})
			if err != nil || again != got {
				t.Errorf("Canonical(%s, %q) = %q, %v; want it unchanged (idempotence)", k, got, again, err)
			}
		})
	}
}

// mustDiffer checks that each pair of spellings has different canonical
// forms (or that one of them is invalid): values that must not meet.
func mustDiffer(t *testing.T, k Kind, pairs [][2]canonCase) {
	t.Helper()
	for _, p := range pairs {
		a, errA := Canonical(k, p[0].value, Options{Region: p[0].region})
		b, errB := Canonical(k, p[1].value, Options{Region: p[1].region})
		if errA != nil || errB != nil {
			t.Errorf("Canonical(%s, %q / %q): %v / %v; want both valid", k, p[0].value, p[1].value, errA, errB)
			continue
		}
		if a == b {
			t.Errorf("Canonical(%s, %q, %q) = Canonical(%q, %q) = %q; want them to differ",
				k, p[0].value, p[0].region, p[1].value, p[1].region, a)
		}
	}
}

func TestPhone(t *testing.T) {
	const london = "+442079460958"
	runCanon(t, Phone, []canonCase{
		// One London number, many spellings.
		{value: "020 7946 0958", region: "GB", want: london},
		{value: "+44 20 7946 0958", want: london},
		{value: "+44 20 7946 0958", region: "TH", want: london},
		{value: "00 44 20 7946 0958", region: "GB", want: london},
		{value: "0044 20 7946 0958", region: "DE", want: london},
		{value: "011 44 20 7946 0958", region: "US", want: london},
		{value: "+44 (0)20 7946 0958", want: london},
		{value: "(020) 7946-0958", region: "GB", want: london},
		{value: "+44.20.7946.0958", want: london},
		{value: "tel:+44-20-7946-0958", want: london},
		{value: "０２０ ７９４６ ０９５８", region: "GB", want: london},
		{value: "＋４４ ２０ ７９４６ ０９５８", want: london},
		{value: "  020\u00a07946\u200b0958\t", region: "gb", want: london},
		{value: "020 7946 0958 ext. 123", region: "GB", want: london},
		{value: london, want: london},
		// Other countries.
		{value: "07700 900123", region: "GB", want: "+447700900123"},
		{value: "(202) 555-0143", region: "US", want: "+12025550143"},
		{value: "1-202-555-0143", region: "US", want: "+12025550143"},
		{value: "+1 202 555 0143", region: "GB", want: "+12025550143"},
		{value: "02 123 4567", region: "TH", want: "+6621234567"},
		{value: "00 66 2 123 4567", region: "GB", want: "+6621234567"},
		{value: "001 66 2 123 4567", region: "TH", want: "+6621234567"},
		{value: "06 12 34 56 78", region: "FR", want: "+33612345678"},
		{value: "+39 06 1234 5678", want: "+390612345678"},
		// Invalid values and their reasons.
		{value: "", region: "GB", err: ErrEmpty},
		{value: " \t ", region: "GB", err: ErrEmpty},
		{value: "020 7946 0958", err: ErrRegion},
		{value: "020 7946 0958", region: "AQ", err: ErrRegion},
		{value: "020 7946 0958", region: "UK", err: ErrRegion},
		{value: "12", region: "GB", err: ErrNotPossible},
		{value: "020 7946 09", region: "GB", err: ErrNotPossible},
		{value: "+44 020 7946 09", err: ErrNotPossible},
		{value: "+999 1234 5678", err: ErrNotPossible},
		{value: "+44 20 7946 0958 1234 5678", err: ErrTooLong},
		{value: "+44 20 7946 09", err: ErrNotPossible},
		{value: "0044 20 7946 0958", region: "TH", err: ErrNotPossible},   // 00 is not an international prefix in TH
		{value: "011 44 20 7946 0958", region: "GB", err: ErrNotPossible}, // nor is 011 in GB
		{value: "555-0143", region: "US", err: ErrNotPossible},
		{value: "not a number", region: "GB", err: ErrSyntax},
		{value: strings.Repeat("1", MaxLen+1), region: "GB", err: ErrTooLong},
		{value: "\xff020 7946 0958", region: "GB", err: ErrSyntax},
	})
	mustDiffer(t, Phone, [][2]canonCase{
		{{value: "0612345678", region: "FR"}, {value: "0612345678", region: "DE"}},
		{{value: "020 7946 0958", region: "GB"}, {value: "020 7946 0959", region: "GB"}},
		{{value: "07700 900123", region: "GB"}, {value: "07700 900123", region: "DE"}},
		{{value: "+44 20 7946 0958"}, {value: "+33 1 23 45 67 89"}},
	})
}

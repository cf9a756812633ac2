package node

import (
	"testing"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
)

func TestQuerySetCommitment(t *testing.T) {
	a, b := ident.Input(ident.Email, "a@example.org"), ident.Input(ident.Email, "b@example.org")
	k1, k2 := [32]byte{1}, [32]byte{2}
	base := querySetCommitment(k1, [][]byte{a, b})
	for _, tc := range []struct {
		name   string
		key    [32]byte
		inputs [][]byte
		same   bool
	}{
		{"same set", k1, [][]byte{a, b}, true},
		{"order", k1, [][]byte{b, a}, true},
		{"duplicates", k1, [][]byte{a, b, a}, true},
		{"other key", k2, [][]byte{a, b}, false},
		{"subset", k1, [][]byte{a}, false},
	} {
		if got := querySetCommitment(tc.key, tc.inputs); (got == base) != tc.same {
			t.Errorf("%s: commitment equal = %v; want %v", tc.name, got == base, tc.same)
		}
	}
}

func TestPartnerReason(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want exchange.Reason
	}{
		{"partner_budget", exchange.ReasonPartnerBudget},
		{"size_over_cap", exchange.ReasonSizeOverCap},
		{"case_budget", exchange.ReasonNotPermitted},
		{"outside_agreement", exchange.ReasonNotPermitted},
		{"", exchange.ReasonNotPermitted},
	} {
		if got := partnerReason(tc.id); got != tc.want {
			t.Errorf("partnerReason(%q) = %q; want %q", tc.id, got, tc.want)
		}
	}
}

func TestMetricKind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"phone", "phone"}, {"document", "document"}, {"dummy", "other"}, {"PHONE", "other"}, {"", "other"},
	} {
		if got := metricKind(tc.in); got != tc.want {
			t.Errorf("metricKind(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

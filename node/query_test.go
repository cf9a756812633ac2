package node

import (
	"testing"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/policy"
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
		ids  []string
		want exchange.Reason
	}{
		{[]string{"partner_budget"}, exchange.ReasonPartnerBudget},
		{[]string{"size_over_cap"}, exchange.ReasonSizeOverCap},
		{[]string{"case_budget"}, exchange.ReasonNotPermitted},
		{[]string{"outside_agreement"}, exchange.ReasonNotPermitted},
		{[]string{""}, exchange.ReasonNotPermitted},
		{[]string{"safeguarding_budget"}, exchange.ReasonPartnerBudget},
		// The refusal of a victim or witness reach is named whatever else
		// is wrong with the request.
		{[]string{"missing_purpose", "reach_not_allowed"}, exchange.ReasonReachNotAllowed},
	} {
		var rs []policy.Reason
		for _, id := range tc.ids {
			rs = append(rs, policy.Reason{ID: id})
		}
		if got := partnerReason(rs); got != tc.want {
			t.Errorf("partnerReason(%v) = %q; want %q", tc.ids, got, tc.want)
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

package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// TestBudgetReasonReadsState: the budget that refused an admission is named
// from the used amounts the ledger holds, in a time that does not grow with
// the ledger.
func TestBudgetReasonReadsState(t *testing.T) {
	noLeaks(t)
	gb := startNode(t, "GB")
	ctx := context.Background()
	n := 0
	use := func(key string, amount uint64) {
		t.Helper()
		n++
		// PaddedSize 0: what counts is the reservation, not the entries.
		e := ledger.Entry{Header: ledger.Header{Type: ledger.TypeMatchIn, Outcome: ledger.OutcomeOK,
			RequestID: fmt.Sprintf("req-%d", n), Partner: "TH"}}
		var res []ledger.Reservation
		if key != "" {
			res = []ledger.Reservation{{Key: key, Amount: amount, Limit: amount}}
		}
		if _, err := gb.auditG.Admit(ctx, ledger.Admission{Entry: e, PolicyVersion: gb.auditG.Status().Policy, Reserve: res}); err != nil {
			t.Fatalf("Admit reserving %d of %s: %v", amount, key, err)
		}
	}
	use("partner/TH/email/DAY", 95)
	use("kind/iban/DAY", 45)
	use("key/7/eth", 995)
	use("case/partner/TH:OP-9", 995)
	reserve := func(kind, ref string) []policy.Reservation {
		return []policy.Reservation{
			{Key: "partner/TH/" + kind + "/DAY", Amount: 10, Limit: 100},
			{Key: "kind/" + kind + "/DAY", Amount: 10, Limit: 50},
			{Key: "case/partner/TH:" + ref, Amount: 10, Limit: 1000},
			{Key: "key/7/" + kind, Amount: 10, Limit: 1000},
		}
	}
	for _, tc := range []struct {
		kind, ref string
		want      exchange.Reason
	}{
		{"email", "OP-1", exchange.ReasonPartnerBudget},
		{"iban", "OP-1", exchange.ReasonKindCap},
		{"eth", "OP-1", exchange.ReasonKeyExhausted},
		{"btc", "OP-9", exchange.ReasonNotPermitted},
	} {
		if got := gb.admission.budgetReason(reserve(tc.kind, tc.ref)); got != tc.want {
			t.Errorf("budgetReason(%s, case %s) = %s; want %s", tc.kind, tc.ref, got, tc.want)
		}
	}
	allocs := func() float64 {
		return testing.AllocsPerRun(20, func() { gb.admission.budgetReason(reserve("iban", "OP-1")) })
	}
	before := allocs()
	for range 200 {
		use("", 0)
	}
	if after := allocs(); after > before+5 {
		t.Errorf("budgetReason allocates %.0f times with 200 more entries, %.0f before; want no growth", after, before)
	}
}

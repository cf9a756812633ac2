package testnet

import (
	"bytes"
	"strings"
	"testing"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// TestApprovalsCheck runs the approvals check on small histories: the
// steps of a correct approval pass; a lost approval entry, a run without
// one, a run acknowledged before the approval and a match_out that does
// not name the approver fail.
func TestApprovalsCheck(t *testing.T) {
	step := func(i uint64, purpose, id, approver string) format.ExportLine {
		return format.ExportLine{Index: i, Header: format.Header{Type: format.TypeApproval, RequestID: id},
			Body: &format.Body{Purpose: purpose, Approver: approver}}
	}
	out := func(i uint64, rid, approver string) format.ExportLine {
		return format.ExportLine{Index: i, Header: format.Header{Type: format.TypeMatchOut, RequestID: rid},
			Body: &format.Body{Approver: approver}}
	}
	ok := func(id int, kind string) *Op {
		op := &Op{ID: id, Agency: "GB", Kind: kind, Outcome: OpOK, QueryID: "q-1", Approver: "approver", Invoke: float64(id - 1), Complete: float64(id-1) + 0.5}
		if kind == "query" {
			op.Partners = []httpapi.PartnerResult{{Agency: "TH", RequestID: "r1", Outcome: httpapi.OutcomeHits}}
		}
		return op
	}
	good := []format.ExportLine{step(1, approvalPending, "q-1", ""), step(2, approvalApproved, "q-1", "user:approver"),
		step(3, approvalRun, "q-1", "user:approver"), out(4, "r1", "user:approver")}
	for _, tc := range []struct {
		name  string
		lines []format.ExportLine
		ops   []*Op
		fails string
	}{
		{"approved and run", good, []*Op{ok(1, "submit"), ok(2, "approve"), ok(3, "query")}, ""},
		{"early run refused", good, []*Op{ok(1, "submit"), {ID: 2, Agency: "GB", Kind: "run-early", Outcome: OpFailed, QueryID: "q-1"}, ok(3, "approve"), ok(4, "query")}, ""},
		{"approval lost", []format.ExportLine{good[0], good[2], good[3]}, []*Op{ok(1, "submit"), ok(2, "approve")}, "0 approved entries"},
		{"run without approval", []format.ExportLine{good[0], good[2]}, []*Op{ok(1, "submit")}, "without an approved entry before it"},
		{"early run acknowledged", good, []*Op{ok(1, "submit"), ok(2, "run-early")}, "ran before its approval"},
		{"run not recorded", good[:2], []*Op{ok(1, "submit"), ok(2, "approve"), ok(3, "query")}, "0 run entries"},
		{"approval refused on a stale record", good, []*Op{ok(1, "submit"), {ID: 2, Agency: "GB", Kind: "approve", Outcome: OpFailed, QueryID: "q-1",
			Invoke: 5, Err: "query q-1: no such query: not found"}}, "after op 1 recorded it pending"},
		{"run refused on a stale record", good, []*Op{ok(1, "submit"), ok(2, "approve"), {ID: 3, Agency: "GB", Kind: "query", Outcome: OpFailed, QueryID: "q-1",
			Invoke: 5, Err: "query q-1: still waits for an approver (xborder approve q-1): denied by policy"}}, "after op 2 approved it"},
		{"match_out without the approver", []format.ExportLine{good[0], good[1], good[2], out(4, "r1", "")}, []*Op{ok(3, "query")}, "names approver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			c := &checker{net: &Net{Agencies: []*AgencyNode{{Agency: Agency{Code: "GB"}}}}, rep: NewReport(&b), ops: tc.ops,
				last: map[string]ledgerOf{"GB": {lines: tc.lines}}}
			c.approvals()
			_, failed := c.rep.Counts()
			switch {
			case tc.fails == "" && failed > 0:
				t.Errorf("check failed:\n%s", b.String())
			case tc.fails != "" && (failed == 0 || !strings.Contains(b.String(), tc.fails)):
				t.Errorf("want a failure naming %q:\n%s", tc.fails, b.String())
			}
		})
	}
}

package node

import (
	"context"
	"errors"
	"testing"

	"github.com/xborder/xborder/internal/httpapi"
)

// TestApprovalReadsTheRecordsInForce: an approval, and the run of an
// approved query, decide on the query record as the agency holds it, not
// on a replica's copy that may lag (testnet chaos: an approval made on
// one replica right after the query was recorded pending on another was
// refused "no such query", and the run of an acknowledged approval "still
// waits for an approver"). A replica that cannot read the records in force
// (here: cut off from the others) answers unavailable, never a refusal
// from its stale copy.
func TestApprovalReadsTheRecordsInForce(t *testing.T) {
	noLeaks(t)
	if testing.Short() {
		t.Skip("three Raft replicas and two libp2p agencies")
	}
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 3, logs)
	th := startAgency(t, "TH", 1, logs)
	th.hold("phone", "GB", "+44 7700 900101")
	gb.pin(th)
	th.pin(gb)
	lead := gb.leader()
	var cut *Node
	for _, n := range gb.nodes {
		if n != lead {
			cut = n
			break
		}
	}
	if err := cut.mux.Close(); err != nil {
		t.Fatal(err)
	}
	until(t, "the cut replica without a leader", func() bool { return !cut.Audit().Status().Quorum })

	req := httpapi.QueryRequest{Kind: "phone", Case: "OP-APPR", Basis: "Art. 10", Offence: "forced_labour", Purpose: "p",
		Values: canon(t, "phone", "GB", "07700 900101")}
	res, err := lead.querier.Query(ctx, ivan, req)
	if err != nil || res.Status != "pending" {
		t.Fatalf("query that needs an approver = %+v, %v; want pending", res, err)
	}
	if _, err := cut.querier.Approve(ctx, alice, res.ID); !errors.Is(err, httpapi.ErrUnavailable) {
		t.Errorf("approval on a replica cut off from the records: %v; want ErrUnavailable", err)
	}
	if _, err := lead.querier.Approve(ctx, alice, res.ID); err != nil {
		t.Fatalf("approval on the leader: %v", err)
	}
	req.ID, req.CaseKey = res.ID, res.CaseKey
	if _, err := cut.querier.Query(ctx, ivan, req); !errors.Is(err, httpapi.ErrUnavailable) {
		t.Errorf("run of the approved query on a replica cut off from the records: %v; want ErrUnavailable", err)
	}
}

package node

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/xborder/xborder/internal/httpapi"
)

// TestQueryAfterTwoRotations: a partner that rotated its keys twice since
// this node last synced (its copy and pinned card name an epoch retired two
// rotations ago, as in testnet chaos, where every agency rotates every 30 s
// on average) is still answered: the node walks past the retired epochs to
// the one in force, rather than reporting the partner's unknown_epoch
// denial (docs/RELIABILITY.md, defect 5).
func TestQueryAfterTwoRotations(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 1, logs)
	th.hold("phone", "GB", append([]string{"+44 7700 900101", "+44 7700 900202"}, fillers(31000, 20)...)...)
	gb.pin(th)
	th.pin(gb)
	q, r := gb.leader(), th.leader()
	values := canon(t, "phone", "GB", "07700 900101", "07700 900999", "07700 900202")
	req := httpapi.QueryRequest{Kind: "phone", Case: "OP-ROT", Basis: "Art. 10", Offence: "thb", Purpose: "p", Values: values}
	res, err := q.querier.Query(ctx, ivan, req)
	if err != nil {
		t.Fatalf("first query: %v", err)
	}
	first := partOf(t, res, "TH")
	if first.Outcome != httpapi.OutcomeHits {
		t.Fatalf("first query: TH part %+v; want hits", first)
	}
	epoch := r.epochs.currentEpoch()
	for i := range 2 {
		if _, err := r.holdings.RotateKeys(ctx, httpapi.User{Name: "admin", Role: "admin"}); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		want := epoch + uint64(i) + 1
		until(t, "rotation in force, the old epoch retired", func() bool {
			st := r.epochs.epochState()
			return st.Current == want && st.Next == 0
		})
	}
	res, err = q.querier.Query(ctx, ivan, req)
	if err != nil {
		t.Fatalf("query after two rotations: %v", err)
	}
	p := partOf(t, res, "TH")
	if p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, []int{0, 2}) || p.Epoch != epoch+2 {
		for _, l := range strings.Split(string(logs.Bytes()), "\n") {
			if strings.Contains(l, "msg=\"sync") || strings.Contains(l, "partner set not synced") {
				t.Log(l)
			}
		}
		t.Fatalf("query after two rotations: TH part %+v; want hits [0 2] under epoch %d", p, epoch+2)
	}
}

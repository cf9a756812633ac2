package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xborder/xborder/internal/httpapi"
)

// stageSeconds returns the total seconds n's match stage histogram holds.
func stageSeconds(n *Node, direction, stage string) float64 {
	var m dto.Metric
	h := n.mm.stages.WithLabelValues(direction, stage).(prometheus.Histogram)
	if err := h.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleSum()
}

// BenchmarkQueryEndToEnd measures one query of 10,000 phone numbers from
// GB against TH holding 1,000,000, 1,000 of them in common: two nodes in
// this process, real libp2p on loopback, durable single-replica ledgers,
// after TH's set is synced to GB. Each op is the whole query: policy,
// the outbound admit, blinding, the exchange (TH's policy, admit,
// evaluation and proofs), verification, lookup and the result entry. The
// time per stage is reported per op (querier: out-*, responder: in-*).
func BenchmarkQueryEndToEnd(b *testing.B) {
	const n, held, common = 10_000, 1_000_000, 1_000
	logs := &syncBuf{}
	gb := startAgency(b, "GB", 1, logs)
	th := startAgency(b, "TH", 1, logs)
	holdings := make([]string, held)
	for i := range holdings {
		holdings[i] = fmt.Sprintf("+447700%06d", i)
	}
	th.hold("phone", "", holdings...)
	gb.pin(th)
	th.pin(gb)
	values := make([]string, n)
	for i := range values {
		if i < common {
			values[i] = holdings[i*(held/common)]
		} else {
			values[i] = fmt.Sprintf("+447800%06d", i)
		}
	}
	req := httpapi.QueryRequest{Kind: "phone", Case: "BENCH", Basis: "b", Offence: "thb", Purpose: "p", Values: values}
	q, r := gb.leader(), th.leader()
	ctx := context.Background()
	query := func() {
		res, err := q.Query(ctx, ivan, req)
		if err != nil || len(res.Partners) != 1 || res.Partners[0].HitCount != common {
			b.Fatalf("Query = %+v, %v; want %d hits", res, err, common)
		}
	}
	query() // syncs TH's set to GB
	stages := []struct {
		node       *Node
		dir, stage string
	}{
		{q, "out", "policy"}, {q, "out", "ledger"}, {q, "out", "crypto"}, {q, "out", "network"}, {q, "out", "sync"},
		{r, "in", "policy"}, {r, "in", "ledger"}, {r, "in", "crypto"},
	}
	b.Run(fmt.Sprintf("n=%d/held=%d", n, held), func(b *testing.B) {
		before := make([]float64, len(stages))
		for i, s := range stages {
			before[i] = stageSeconds(s.node, s.dir, s.stage)
		}
		var worst time.Duration
		for b.Loop() {
			t := time.Now()
			query()
			worst = max(worst, time.Since(t))
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
		b.ReportMetric(worst.Seconds(), "max-s/op")
		for i, s := range stages {
			b.ReportMetric((stageSeconds(s.node, s.dir, s.stage)-before[i])/float64(b.N), s.dir+"-"+s.stage+"-s/op")
		}
	})
}

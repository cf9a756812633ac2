package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/psi"
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
//
// The paired sub-benchmark runs, inside every iteration and in alternating
// order, the whole query and psi alone on the same keys and sets (GB's
// blind, TH's responder evaluating and proving, GB's verification and
// lookup in its synced copy, in this process, with no policy, ledger or
// network), so that both see the same load: x-psi is the query's time over
// psi's.
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
		res, err := q.querier.Query(ctx, ivan, req)
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

	resp, _, ok := r.sets.responder("phone", r.epochs.currentEpoch(), reachOpen)
	set, key, epoch, _, err := q.partnerSets.partnerSet(ctx, "TH", "phone", reachOpen)
	if !ok || err != nil {
		b.Fatalf("responder %v, partner set: %v", ok, err)
	}
	qr, err := psi.NewQuerier(psi.QuerierConfig{Key: key, Kind: "phone", Epoch: epoch, Dummy: ident.DummyInput})
	if err != nil {
		b.Fatal(err)
	}
	inputs := make([][]byte, n)
	for i, v := range values {
		inputs[i] = ident.Input(ident.Phone, v)
	}
	psiAlone := func() {
		qy, ev, err := qr.Blind(inputs, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		out, err := resp.Evaluate(ev, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if hits, err := qy.Match(out, set); err != nil || len(hits) != common {
			b.Fatalf("psi alone: %d hits, %v; want %d", len(hits), err, common)
		}
	}
	b.Run(fmt.Sprintf("paired/n=%d/held=%d", n, held), func(b *testing.B) {
		var tq, tp time.Duration
		i := 0
		for b.Loop() {
			fns := []func(){query, psiAlone}
			if i%2 == 1 {
				fns[0], fns[1] = fns[1], fns[0]
			}
			for j, fn := range fns {
				t := time.Now()
				fn()
				if (i+j)%2 == 0 {
					tq += time.Since(t)
				} else {
					tp += time.Since(t)
				}
			}
			i++
		}
		b.ReportMetric(tq.Seconds()/float64(b.N), "query-s/op")
		b.ReportMetric(tp.Seconds()/float64(b.N), "psi-s/op")
		b.ReportMetric(tq.Seconds()/tp.Seconds(), "x-psi")
	})

	// Safeguarding: the same query asking the open, victim and witness
	// reaches (TH's victim and witness sets hold nothing but padding). GB
	// blinds once; TH evaluates and proves the one batch under three keys;
	// GB verifies three evaluations and looks each up in its copy of that
	// reach's set. The approval each run needs (a pending record and an
	// approve) is outside the timer.
	th.applyLimits(benchSafeguardLimits)
	gb.applyLimits(benchSafeguardLimits)
	sreq := req
	sreq.Mode, sreq.Case = "safeguarding", "BENCH-SG"
	approved := func() httpapi.QueryRequest {
		res, err := q.querier.Query(ctx, ivan, sreq)
		if err != nil || res.Status != "pending" {
			b.Fatalf("safeguarding Query = %+v, %v; want pending", res, err)
		}
		if _, err := q.querier.Approve(ctx, alice, res.ID); err != nil {
			b.Fatal(err)
		}
		run := sreq
		run.ID, run.CaseKey = res.ID, res.CaseKey
		return run
	}
	sgQuery := func(run httpapi.QueryRequest) {
		res, err := q.querier.Query(ctx, ivan, run)
		if err != nil || len(res.Partners) != 1 || res.Partners[0].HitCount != common || len(res.Partners[0].Reaches) != 3 {
			b.Fatalf("safeguarding Query = %+v, %v; want %d hits over 3 reaches", res, err, common)
		}
	}
	sgQuery(approved()) // syncs TH's victim and witness sets to GB
	b.Run(fmt.Sprintf("safeguarding/reaches=3/n=%d/held=%d", n, held), func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			run := approved()
			b.StartTimer()
			sgQuery(run)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
	})
}

// benchSafeguardLimits is matchLimits with safeguarding rules for GB and
// TH's phone numbers, with budgets a benchmark does not exhaust.
var benchSafeguardLimits = strings.NewReplacer(
	"  GB:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2}\n",
	"  GB:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2,\n"+
		"            safeguarding: {reaches: [open, victim, witness], daily_budget: 1000000000000, handling: H3, instruction: \"benchmark\"}}\n",
	"  TH:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2}\n",
	"  TH:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2,\n"+
		"            safeguarding: {reaches: [open, victim, witness], daily_budget: 1000000000000, handling: H3, instruction: \"benchmark\"}}\n",
).Replace(matchLimits)

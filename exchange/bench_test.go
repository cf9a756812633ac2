package exchange

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"
)

// BenchmarkMatch compares one whole match of n elements through the match
// protocol (signed request over an in-memory pipe, Server checks, Admitter,
// signed answer, Client checks) with the same psi calls made directly.
// Both include blinding, evaluation, proof checks and lookups.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10000} {
		w := newWorld(b, n, nil)
		set := w.holderSet()
		inputs := phones(n/2, n/2+n)
		b.Run(fmt.Sprintf("psi/n=%d", n), func(b *testing.B) {
			q := w.querier()
			for b.Loop() {
				qy, req, err := q.Blind(inputs, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				ev, err := w.psi.Evaluate(req, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				hits, err := qy.Match(ev, set)
				if err != nil || len(hits) != n/2 {
					b.Fatalf("%d hits, %v; want %d", len(hits), err, n/2)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "elements/s")
		})
		b.Run(fmt.Sprintf("exchange/n=%d", n), func(b *testing.B) {
			w.server.cfg.Rand = rand.Reader
			for b.Loop() {
				qy, q := w.query(inputs)
				a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
				if err != nil {
					b.Fatal(err)
				}
				hits, err := qy.Match(a.Results[0].Evaluation, set)
				if err != nil || len(hits) != n/2 {
					b.Fatalf("%d hits, %v; want %d", len(hits), err, n/2)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "elements/s")
		})
		// paired runs both alternately inside every iteration, in
		// alternating order, so both see the same machine load; x-psi is
		// the exchange's time divided by psi's.
		b.Run(fmt.Sprintf("paired/n=%d", n), func(b *testing.B) {
			w.server.cfg.Rand = rand.Reader
			q := w.querier()
			direct := func() {
				qy, req, err := q.Blind(inputs, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				ev, err := w.psi.Evaluate(req, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				if hits, err := qy.Match(ev, set); err != nil || len(hits) != n/2 {
					b.Fatalf("%d hits, %v; want %d", len(hits), err, n/2)
				}
			}
			overWire := func() {
				qy, q := w.query(inputs)
				a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
				if err != nil {
					b.Fatal(err)
				}
				if hits, err := qy.Match(a.Results[0].Evaluation, set); err != nil || len(hits) != n/2 {
					b.Fatalf("%d hits, %v; want %d", len(hits), err, n/2)
				}
			}
			var tPSI, tEx time.Duration
			i := 0
			for b.Loop() {
				for j := range 2 {
					start := time.Now()
					if (i+j)%2 == 0 {
						direct()
						tPSI += time.Since(start)
					} else {
						overWire()
						tEx += time.Since(start)
					}
				}
				i++
			}
			b.ReportMetric(tEx.Seconds()/tPSI.Seconds(), "x-psi")
		})
	}
}

// BenchmarkSync fetches a whole base set of n identifiers through the sync
// protocol (signed head and segment over an in-memory pipe, card check,
// digest, decoding into a psi.Set). The set holds 1,000 real outputs and
// n-1,000 uniformly random 64-byte strings standing in for the other
// holdings' outputs (outputs are uniform, so the set's bytes and costs are
// the same).
func BenchmarkSync(b *testing.B) {
	for _, n := range []int{1000000} {
		w := newWorld(b, 1000, nil)
		outs := append([][]byte(nil), w.outputs...)
		rnd := detReader(5)
		for len(outs) < n {
			o := make([]byte, 64)
			_, _ = rnd.Read(o)
			outs = append(outs, o)
		}
		es, err := w.psi.EncodeSet(1, outs)
		if err != nil {
			b.Fatal(err)
		}
		base, err := es.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		w.sets.holdings[kind] = &Holding{Base: 1, Segments: [][]byte{base}}
		b.Run(fmt.Sprintf("base/n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(base)))
			for b.Loop() {
				got, err := w.sync(w.opener, nil)
				if err != nil || got.Set.Version() != 1 {
					b.Fatalf("Sync: %v", err)
				}
			}
			b.ReportMetric(float64(len(base))/float64(n), "bytes/identifier")
		})
	}
}

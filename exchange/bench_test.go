package exchange

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
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
				hits, err := qy.Match(a.Evaluation, set)
				if err != nil || len(hits) != n/2 {
					b.Fatalf("%d hits, %v; want %d", len(hits), err, n/2)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "elements/s")
		})
	}
}

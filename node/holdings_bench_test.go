package node

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/psi"
)

// benchPhones is the size of the holdings benchmarks (issue 8: 1,000,000).
const benchPhones = 1_000_000

// benchPhone is the i-th distinct UK mobile number, as a file would hold it.
func benchPhone(i int) string { return fmt.Sprintf("07400 %06d", i) }

// BenchmarkHoldings measures, on one replica: an import of benchPhones
// phone numbers through the API (canonicalised, stored through the data
// group) until the replica has built the encoded set and recorded its
// digest, against psi's Precompute of the same inputs alone right after
// in each round (x-psi is the ratio of the rates); then a partner's full
// sync of that set over loopback libp2p.
//
//	go test -run '^$' -bench 'Holdings' -benchtime 1x -count 5 -timeout 60m ./node/
func BenchmarkHoldings(b *testing.B) {
	ctx := context.Background()
	// FR syncs in the background at the default interval: the Sync
	// benchmark empties its copies, so that every partnerSet call syncs.
	fr, _ := startStoppable(b, "FR", 0)
	var gb *testNode
	var stopGB func()
	var st *httpapi.Client
	// fresh starts a new GB replica (the previous one stops), pinned both ways with FR.
	fresh := func() {
		if stopGB != nil {
			stopGB()
		}
		gb, stopGB = startStoppable(b, "GB", 0)
		applyExamplePolicy(b, gb)
		st = steward(b, gb, gb.APIURL())
		gbCard, _ := gb.admin.Card(ctx)
		frCard, _ := fr.admin.Card(ctx)
		if fr.cards.Pins()["GB"] != nil {
			if err := fr.cards.UnpinPartner(ctx, "bench", "GB"); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := fr.admin.AddPartner(ctx, gbCard.Card, gbCard.Fingerprint); err != nil {
			b.Fatal(err)
		}
		if _, err := gb.admin.AddPartner(ctx, frCard.Card, frCard.Fingerprint); err != nil {
			b.Fatal(err)
		}
		poll(b, "steward known", time.Minute, func() bool { _, err := st.DataStats(ctx); return err == nil })
	}
	rows := make([]httpapi.Row, benchPhones)
	inputs := make([][]byte, benchPhones)
	for i := range rows {
		rows[i] = httpapi.Row{Line: i + 2, Value: benchPhone(i)}
		c, err := ident.Canonical(ident.Phone, rows[i].Value, ident.Options{Region: "GB"})
		if err != nil {
			b.Fatalf("phone %d: %v", i, err)
		}
		inputs[i] = ident.Input(ident.Phone, c)
	}

	b.Run(fmt.Sprintf("ImportPrecompute/n=%d", benchPhones), func(b *testing.B) {
		var seed psi.Seed
		r, err := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: "GB", Kind: "phone", Epoch: 1, Reach: reachOpen})
		if err != nil {
			b.Fatal(err)
		}
		var psiTime time.Duration
		for b.Loop() {
			b.StopTimer()
			fresh()
			runtime.GC()
			b.StartTimer()
			began := time.Now()
			im, err := st.BeginImport(ctx, httpapi.BeginImport{Kind: "phone", Region: "GB"})
			if err != nil {
				b.Fatal(err)
			}
			// Two batches in flight, as the CLI sends them.
			errs := make(chan error, benchPhones/5000)
			sem := make(chan struct{}, 2)
			for lo := 0; lo < benchPhones; lo += 5000 {
				sem <- struct{}{}
				go func() {
					_, err := st.ImportRows(ctx, im.ID, rows[lo:lo+5000])
					<-sem
					errs <- err
				}()
			}
			for range benchPhones / 5000 {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			sent := time.Since(began)
			res, err := st.CommitImport(ctx, im.ID, httpapi.CommitImport{})
			if err != nil || res.Imported != benchPhones {
				b.Fatalf("import: %+v, %v", res, err)
			}
			committed := time.Since(began)
			poll(b, "set built", 10*time.Minute, func() bool {
				_, v, ok := gb.sets.responder("phone", 1, reachOpen)
				return ok && v >= uint64(res.Version)
			})
			b.Logf("rows sent %v, committed %v, set built %v", sent.Round(time.Millisecond), committed.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
			// psi's Precompute of the same inputs alone, right after, so
			// that both see the same load on this shared machine.
			b.StopTimer()
			start := time.Now()
			if _, err := r.Precompute(inputs); err != nil {
				b.Fatal(err)
			}
			psiTime += time.Since(start)
			b.StartTimer()
		}
		rate := float64(benchPhones) * float64(b.N) / b.Elapsed().Seconds()
		psiRate := float64(benchPhones) * float64(b.N) / psiTime.Seconds()
		b.ReportMetric(rate, "rows/s")
		b.ReportMetric(psiRate, "psi-rows/s")
		b.ReportMetric(rate/psiRate, "x-psi")
	})

	b.Run(fmt.Sprintf("Sync/n=%d", benchPhones), func(b *testing.B) {
		if gb == nil {
			b.Fatal("run with ImportPrecompute first: -bench Holdings")
		}
		var size int
		for b.Loop() {
			b.StopTimer()
			fr.partnerSets.mu.Lock()
			fr.partnerSets.copies = map[string]*partnerCopy{}
			fr.partnerSets.mu.Unlock()
			b.StartTimer()
			s, _, _, fresh, err := fr.partnerSets.partnerSet(ctx, "GB", "phone", reachOpen)
			if err != nil || !fresh {
				b.Fatalf("sync: fresh %v, %v", fresh, err)
			}
			size = s.Entries()
		}
		h, err := gb.syncOwner.Holding(ctx, "phone", gb.epochs.currentEpoch(), reachOpen)
		if err != nil {
			b.Fatal(err)
		}
		bytes := 0
		for _, sg := range h.Segments {
			bytes += len(sg)
		}
		b.ReportMetric(float64(bytes)/benchPhones, "bytes/identifier")
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/sync")
		_ = size
	})
}

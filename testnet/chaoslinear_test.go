package testnet

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// synthRun is a simulated agency: a log appended to by concurrent
// clients' queries (match_out then match_result) and reads (ledger_read
// then a snapshot of the read's types from a window below the log's end),
// each taking effect at random points within its invoke and complete
// times, with other entries (partners' match_in, syncs) in between, and
// some operations without answer (their appends done or not).
type synthRun struct {
	ops   []*Op
	final ledgerOf
	end   float64
}

func synthHistory(seed uint64, logOps, clients int, unknown float64) *synthRun {
	rng := rand.New(rand.NewPCG(seed, 1))
	type event struct {
		t    float64
		kind int // 0 invoke (a read's window), 1 append, 2 snapshot, 3 other entry
		op   *Op
		key  string
		part int // a query's append: 0 match_out, 1 match_result
	}
	var evs []event
	var all []*Op
	clock := make([]float64, clients)
	n, id := 0, 0
	for n < logOps {
		c := rng.IntN(clients)
		id++
		op := &Op{ID: id, Agency: "GB", Client: c, Invoke: clock[c] + rng.Float64()*50, Outcome: OpOK}
		all = append(all, op)
		lost := rng.Float64() < unknown
		if lost {
			op.Outcome = OpUnknown
			op.Complete = op.Invoke + 30000 // the client's timeout
		}
		if rng.IntN(3) == 0 {
			op.Kind, op.Purpose = "read", fmt.Sprintf("chaos read %d", id)
			if !lost {
				op.Complete = op.Invoke + 5 + rng.Float64()*400
			}
			a := op.Invoke + rng.Float64()*(op.Complete-op.Invoke)/2
			evs = append(evs, event{t: op.Invoke, kind: 0, op: op})
			if !lost || rng.IntN(2) == 0 {
				evs = append(evs, event{t: a, kind: 1, op: op, key: op.Purpose})
				if !lost {
					evs = append(evs, event{t: a + rng.Float64()*(op.Complete-a), kind: 2, op: op})
				}
			}
		} else {
			op.Kind = "query"
			rid := fmt.Sprintf("%032x", id)
			op.Partners = []httpapi.PartnerResult{{Agency: "TH", RequestID: rid, Outcome: httpapi.OutcomeNoHits}}
			if !lost {
				op.Complete = op.Invoke + 20 + rng.Float64()*2000
			}
			a := op.Invoke + rng.Float64()*(op.Complete-op.Invoke)/2
			b := a + rng.Float64()*(op.Complete-a)
			switch {
			case !lost || rng.IntN(3) == 0:
				evs = append(evs, event{t: a, kind: 1, op: op, part: 0}, event{t: b, kind: 1, op: op, part: 1})
			case rng.IntN(2) == 0:
				evs = append(evs, event{t: a, kind: 1, op: op, part: 0})
			}
		}
		n += 2
		clock[c] = op.Complete
	}
	end := 0.0
	for _, c := range clock {
		end = max(end, c)
	}
	for range logOps / 2 {
		evs = append(evs, event{t: rng.Float64() * end, kind: 3})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].t < evs[j].t })
	r := &synthRun{ops: all, end: end + 1000}
	for _, e := range evs {
		idx := uint64(len(r.final.lines))
		x := format.ExportLine{Index: idx}
		switch e.kind {
		case 0:
			e.op.From = idx - min(idx, 150+uint64(e.op.ID%7))
			continue
		case 1:
			if e.op.Kind == "read" {
				x.Header.Type, x.Body = ledger.TypeLedgerRead, &format.Body{Purpose: e.op.Purpose}
				break
			}
			p := &e.op.Partners[0]
			x.Header.Type, x.Header.RequestID = ledger.TypeMatchOut, p.RequestID
			if e.part == 1 {
				x.Header.Type = ledger.TypeMatchResult
			}
			if e.op.Outcome == OpOK {
				i := idx
				if e.part == 0 {
					p.OutboundIndex = &i
				} else {
					p.ResultIndex = &i
				}
			}
		case 2:
			for _, l := range r.final.lines[e.op.From:] {
				if readTypeOf(l.Header.Type) {
					re := readEntry{Index: l.Index, Type: l.Header.Type, RequestID: l.Header.RequestID}
					if l.Body != nil {
						re.Purpose = l.Body.Purpose
					}
					e.op.Read = append(e.op.Read, re)
				}
			}
			continue
		case 3:
			x.Header.Type = ledger.TypeMatchIn
			x.Header.RequestID = fmt.Sprintf("in%d", idx)
		}
		r.final.lines = append(r.final.lines, x)
	}
	return r
}

func readTypeOf(t ledger.Type) bool {
	for _, x := range readTypes {
		if x == t {
			return true
		}
	}
	return false
}

// TestLinearizableLongHistory checks a synthetic history of 30,000
// operations on the log (a long run's agency, 5 % of them without answer)
// within the bound the chaos checker gives porcupine: Ok; then the same
// history with a planted violation of order (two acknowledged queries,
// one done before the other began, given each other's indexes, in the
// reads too: no content check sees it) is Illegal, and so is one with a
// read that missed an acknowledged append.
func TestLinearizableLongHistory(t *testing.T) {
	r := synthHistory(7, 30000, 16, 0.05)
	unknown := 0
	for _, op := range r.ops {
		if op.Outcome == OpUnknown {
			unknown++
		}
	}
	if unknown < 500 {
		t.Fatalf("only %d operations without answer", unknown)
	}
	res, ev := checkLinearizable(r.ops, r.final, r.end, 0)
	if res != porcupine.Ok {
		t.Fatalf("the simulated history: %s (%s)", res, ev)
	}
	t.Logf("%s: %s", res, ev)

	// Two acknowledged queries, the second begun after the first was
	// done, swap their entries: in their answers, the reads and the
	// final ledger alike.
	r = synthHistory(7, 30000, 16, 0.05)
	var q1, q2 *Op
	for _, op := range r.ops[len(r.ops)/2:] {
		if op.Kind != "query" || op.Outcome != OpOK {
			continue
		}
		if q1 == nil {
			q1 = op
		} else if op.Invoke > q1.Complete+100 {
			q2 = op
			break
		}
	}
	if q2 == nil {
		t.Fatal("no two sequential queries to plant a violation on")
	}
	p1, p2 := &q1.Partners[0], &q2.Partners[0]
	swap := map[string]string{p1.RequestID: p2.RequestID, p2.RequestID: p1.RequestID}
	for i := range r.final.lines {
		if s, ok := swap[r.final.lines[i].Header.RequestID]; ok {
			r.final.lines[i].Header.RequestID = s
		}
	}
	for _, op := range r.ops {
		for i := range op.Read {
			if s, ok := swap[op.Read[i].RequestID]; ok {
				op.Read[i].RequestID = s
			}
		}
	}
	p1.OutboundIndex, p2.OutboundIndex = p2.OutboundIndex, p1.OutboundIndex
	p1.ResultIndex, p2.ResultIndex = p2.ResultIndex, p1.ResultIndex
	res, ev = checkLinearizable(r.ops, r.final, r.end, 0)
	if res != porcupine.Illegal || !strings.Contains(ev, "no linearization") || !strings.Contains(ev, fmt.Sprintf("op %d append", q1.ID)) {
		t.Errorf("two queries' indexes swapped: %s (%s), want Illegal from porcupine naming op %d", res, ev, q1.ID)
	}
	t.Logf("swapped: %s: %s", res, ev)

	// A read that did not show an acknowledged append in its window.
	r = synthHistory(7, 30000, 16, 0.05)
	var missed string
	for _, op := range r.ops[len(r.ops)/2:] {
		if op.Kind == "read" && op.Outcome == OpOK && len(op.Read) > 2 && readKey(op.Read[0]) != "" {
			missed = readKey(op.Read[0])
			op.Read = op.Read[1:]
			break
		}
	}
	res, ev = checkLinearizable(r.ops, r.final, r.end, 0)
	if res != porcupine.Illegal || !strings.Contains(ev, "did not show "+missed) {
		t.Errorf("a read missing %s: %s (%s), want Illegal naming it", missed, res, ev)
	}
}

// BenchmarkLinearizableLongHistory is the figure for the check of a
// 30-minute run's agency: 30,000 operations on the log, 5 % without
// answer; peak-heap-MB is the largest heap in use seen while it ran.
func BenchmarkLinearizableLongHistory(b *testing.B) {
	r := synthHistory(7, 30000, 16, 0.05)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	b.ResetTimer()
	for b.Loop() {
		if res, ev := checkLinearizable(r.ops, r.final, r.end, 0); res != porcupine.Ok {
			b.Fatalf("%s: %s", res, ev)
		}
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}

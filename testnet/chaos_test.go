package testnet

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

func u64(v uint64) *uint64 { return &v }

// query is an acknowledged query op whose one partner part appended
// match_out and match_result at out and res.
func queryOp(id int, invoke, complete float64, rid string, out, res uint64) *Op {
	return &Op{ID: id, Kind: "query", Invoke: invoke, Complete: complete, Outcome: OpOK,
		Partners: []httpapi.PartnerResult{{Agency: "TH", RequestID: rid, Outcome: httpapi.OutcomeNoHits,
			OutboundIndex: u64(out), ResultIndex: u64(res)}}}
}

func readOp(id int, invoke, complete float64, own uint64, es ...readEntry) *Op {
	op := &Op{ID: id, Kind: "read", Invoke: invoke, Complete: complete, Outcome: OpOK}
	op.Purpose = "chaos read " + string(rune('0'+id))
	op.Read = append(es, readEntry{Index: own, Type: ledger.TypeLedgerRead, Purpose: op.Purpose})
	return op
}

func out(i uint64, rid string) readEntry {
	return readEntry{Index: i, Type: ledger.TypeMatchOut, RequestID: rid}
}

func res(i uint64, rid string) readEntry {
	return readEntry{Index: i, Type: ledger.TypeMatchResult, RequestID: rid}
}

// final is a final ledger of n entries holding es at their indexes and
// entries that are not the workload's elsewhere.
func final(n uint64, es ...readEntry) ledgerOf {
	var l ledgerOf
	for i := range n {
		l.lines = append(l.lines, format.ExportLine{Index: i, Header: format.Header{Type: ledger.TypeMatchIn, RequestID: fmt.Sprintf("in%d", i)}})
	}
	for _, e := range es {
		x := &l.lines[e.Index]
		x.Header.Type, x.Header.RequestID, x.Body = e.Type, e.RequestID, &format.Body{Purpose: e.Purpose}
	}
	return l
}

func own(i uint64, id int) readEntry {
	return readEntry{Index: i, Type: ledger.TypeLedgerRead, Purpose: "chaos read " + string(rune('0'+id))}
}

// TestLogModel checks the append-only log model on small histories
// against their final ledger: what a correct ledger does passes, a lost,
// reordered or stale one fails, and an operation without answer is what
// the final ledger says it did.
func TestLogModel(t *testing.T) {
	unknown := func(id int, invoke float64, rid string) *Op {
		return &Op{ID: id, Kind: "query", Invoke: invoke, Complete: invoke + 30, Outcome: OpUnknown,
			Partners: []httpapi.PartnerResult{{Agency: "TH", RequestID: rid}}}
	}
	for _, tc := range []struct {
		name  string
		ops   []*Op
		final ledgerOf
		want  porcupine.CheckResult
	}{
		{"append then read", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 9, out(5, "a"), res(7, "a"))},
			final(10, out(5, "a"), res(7, "a"), own(9, 2)), porcupine.Ok},
		{"concurrent read may miss it", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 5, 30, 6, out(5, "a"))},
			final(10, out(5, "a"), own(6, 2), res(7, "a")), porcupine.Ok},
		{"acknowledged append lost", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 9, out(5, "a"))},
			final(10, out(5, "a"), res(7, "a"), own(9, 2)), porcupine.Illegal},
		{"acknowledged append not in the final ledger", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 9, out(5, "a"))},
			final(10, out(5, "a"), own(9, 2)), porcupine.Illegal},
		{"other entry at an acknowledged index", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 9, out(5, "a"), res(7, "b"))},
			final(10, out(5, "a"), res(7, "a"), own(9, 2)), porcupine.Illegal},
		{"a read from a later index need not show it", []*Op{queryOp(1, 0, 10, "a", 5, 7), func() *Op {
			op := readOp(2, 20, 30, 9)
			op.From = 8
			return op
		}()}, final(10, out(5, "a"), res(7, "a"), own(9, 2)), porcupine.Ok},
		{"stale read", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 4)},
			final(10, own(4, 2), out(5, "a"), res(7, "a")), porcupine.Illegal},
		{"index going back", []*Op{queryOp(1, 0, 10, "a", 5, 7), queryOp(2, 20, 30, "b", 6, 8)},
			final(10, out(5, "a"), out(6, "b"), res(7, "a"), res(8, "b")), porcupine.Illegal},
		{"sees the future", []*Op{readOp(1, 0, 10, 9, out(5, "a"), res(7, "a")), queryOp(2, 20, 30, "a", 5, 7)},
			final(10, out(5, "a"), res(7, "a"), own(9, 1)), porcupine.Illegal},
		{"unknown without request ID", []*Op{
			{ID: 1, Kind: "query", Invoke: 0, Complete: 10, Outcome: OpUnknown},
			readOp(2, 20, 30, 9),
		}, final(10, own(9, 2)), porcupine.Ok},
		{"unknown append in the final ledger", []*Op{unknown(1, 0, "a"), readOp(2, 50, 60, 9, out(5, "a"), res(7, "a"))},
			final(10, out(5, "a"), res(7, "a"), own(9, 2)), porcupine.Ok},
		{"unknown append not in the final ledger", []*Op{unknown(1, 0, "a"), readOp(2, 50, 60, 9)},
			final(10, own(9, 2)), porcupine.Ok},
		{"unknown append half done", []*Op{unknown(1, 0, "a"), readOp(2, 50, 60, 9, out(5, "a"))},
			final(10, out(5, "a"), own(9, 2)), porcupine.Ok},
		{"unknown append later than a read that missed it", []*Op{unknown(1, 0, "a"), readOp(2, 5, 20, 4), readOp(3, 50, 60, 9, own(4, 2), out(5, "a"), res(7, "a"))},
			final(10, own(4, 2), out(5, "a"), res(7, "a"), own(9, 3)), porcupine.Ok},
		{"unknown append seen before it began", []*Op{readOp(1, 0, 10, 9, out(5, "a"), res(7, "a")), unknown(2, 20, "a")},
			final(10, out(5, "a"), res(7, "a"), own(9, 1)), porcupine.Illegal},
		{"read without answer", []*Op{queryOp(1, 0, 10, "a", 5, 7), {ID: 2, Kind: "read", Purpose: "chaos read 2", Invoke: 20, Complete: 50, Outcome: OpUnknown}},
			final(10, out(5, "a"), res(7, "a"), own(9, 2)), porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ev := checkLinearizable(tc.ops, tc.final, 1000, 10*time.Second); got != tc.want {
				t.Errorf("got %s, want %s (%s)", got, tc.want, ev)
			}
		})
	}
}

// TestChaosFindsPlantedDefects builds xborder with each planted defect
// (ledger/defect_*.go) and runs a short chaos without faults: the checker
// must fail the invariant the defect breaks.
func TestChaosFindsPlantedDefects(t *testing.T) {
	if testing.Short() {
		t.Skip("builds xborder three times and runs three federations")
	}
	for _, tc := range []struct{ tag, check string }{
		{"defect_ack_uncommitted", "ledger history linearizable"},
		{"defect_drop_match_in", "exactly once"},
		{"defect_drop_sync_entry", "every sync answer, sync denial and match denial sent has its entry"},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "xborder")
			if b, err := exec.Command("go", "build", "-tags", "chaos,"+tc.tag, "-o", bin, "../cmd/xborder").CombinedOutput(); err != nil {
				t.Fatalf("build with %s: %v\n%s", tc.tag, err, b)
			}
			var log strings.Builder
			rep := NewReport(&log)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			_, err := Chaos(ctx, ChaosConfig{Config: Config{Dir: t.TempDir(), Binary: bin, Agencies: 2, Replicas: 1, Holdings: 100, Seed: 1},
				Duration: 20 * time.Second, Faults: []string{"none"}}, rep)
			rep.Finish()
			t.Log(log.String())
			if err != nil {
				t.Fatal(err)
			}
			failed := rep.Failed()
			found := false
			for _, f := range failed {
				found = found || strings.Contains(f, tc.check)
				if strings.Contains(f, "nothing left") {
					t.Errorf("federation not stopped: %s", f)
				}
			}
			if !found {
				t.Errorf("planted %s: no failed check names %q; failed: %v", tc.tag, tc.check, failed)
			}
		})
	}
}

// TestChaosInterrupted cancels a chaos run in the middle of its workload
// and nemesis (as Ctrl-C does): no replica process and no port, the
// proxies' included, may remain.
func TestChaosInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a federation")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var net *Net
	cfg := ChaosConfig{Config: Config{Dir: t.TempDir(), Binary: xborder, Agencies: 2, Replicas: 1, Holdings: 100, Seed: 3,
		OnUp: func(n *Net) {
			net = n
			time.AfterFunc(8*time.Second, cancel)
		}}, Duration: time.Minute, Faults: []string{FaultKill, FaultPause}}
	start := time.Now()
	_, err := Chaos(ctx, cfg, NewReport(nil))
	if err == nil {
		t.Fatal("an interrupted run reported no error")
	}
	if time.Since(start) > 50*time.Second {
		t.Errorf("the interrupted run took %s to stop", time.Since(start))
	}
	if net == nil {
		t.Fatal("the federation never came up")
	}
	// Every process started, restarts included, and every port bound.
	checkGone(t, net.PIDs(), net.Ports())
}

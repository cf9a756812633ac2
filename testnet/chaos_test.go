package testnet

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
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

// TestLogModel checks the append-only log model on small histories: what
// a correct ledger does passes, a lost, reordered or stale one fails.
func TestLogModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []*Op
		want porcupine.CheckResult
	}{
		{"append then read", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 9, out(5, "a"), res(7, "a"))}, porcupine.Ok},
		{"concurrent read may miss it", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 5, 30, 6, out(5, "a"))}, porcupine.Ok},
		{"acknowledged append lost", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 9, out(5, "a"))}, porcupine.Illegal},
		{"other entry at an acknowledged index", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 9, out(5, "a"), res(7, "b"))}, porcupine.Illegal},
		{"a read from a later index need not show it", []*Op{queryOp(1, 0, 10, "a", 5, 7), func() *Op {
			op := readOp(2, 20, 30, 9)
			op.From = 8
			return op
		}()}, porcupine.Ok},
		{"stale read", []*Op{queryOp(1, 0, 10, "a", 5, 7), readOp(2, 20, 30, 4)}, porcupine.Illegal},
		{"index going back", []*Op{queryOp(1, 0, 10, "a", 5, 7), queryOp(2, 20, 30, "b", 6, 8)}, porcupine.Illegal},
		{"sees the future", []*Op{readOp(1, 0, 10, 9, out(5, "a")), queryOp(2, 20, 30, "a", 5, 7)}, porcupine.Illegal},
		{"unknown may or may not show", []*Op{
			{ID: 1, Kind: "query", Invoke: 0, Complete: 10, Outcome: OpUnknown},
			readOp(2, 20, 30, 9),
		}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ev := checkLinearizable(tc.ops, 10*time.Second); got != tc.want {
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

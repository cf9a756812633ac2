package testnet

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/xborder/xborder/ledger/format"
)

// linearTimeout bounds porcupine on a history of n operations: a base and
// a little per operation (the check of a 30-minute run's 30,000
// operations takes seconds; the bound is for a search that goes astray).
func linearTimeout(n int) time.Duration {
	return 30*time.Second + time.Duration(n)*4*time.Millisecond
}

// linearHistory is an agency's history ready for porcupine, with what the
// content check found wrong.
type linearHistory struct {
	ops      []porcupine.Operation
	bad      []string // content violations, each with its evidence
	resolved int      // unknown appends found in the final ledger
	dropped  int      // unknown appends not in it
}

// pendingAppend is one append of the workload before it is resolved.
type pendingAppend struct {
	op    *Op
	key   string
	index *uint64 // the index the node returned; nil: none
}

// logHistory turns an agency's operations into porcupine's operations,
// resolving the unknown ones from the final ledger l; end is when the
// run ended (the final export's completion, in the operations' ms).
func logHistory(ops []*Op, l ledgerOf, end float64) *linearHistory {
	h := &linearHistory{}
	// The keys of the workload's appends: a read shows other entries too
	// (partners' denials carry their own request IDs), which are not ours.
	ours := map[string]bool{}
	var appends []pendingAppend
	for _, op := range ops {
		switch op.Kind {
		case "query":
			for _, p := range op.Partners {
				if p.RequestID == "" {
					continue
				}
				ours["out/"+p.RequestID], ours["result/"+p.RequestID] = true, true
				appends = append(appends, pendingAppend{op, "out/" + p.RequestID, p.OutboundIndex},
					pendingAppend{op, "result/" + p.RequestID, p.ResultIndex})
			}
		case "read":
			k := "read/" + op.Purpose
			ours[k] = true
			var own *uint64
			for _, e := range op.Read {
				if readKey(e) == k {
					own = &e.Index
				}
			}
			appends = append(appends, pendingAppend{op, k, own})
		}
	}
	f := newFinalLog(l, ours)
	us := func(ms float64) int64 { return int64(ms * 1000) }
	// Reads: content against the final ledger, and when each of the
	// workload's entries was first seen.
	seen := map[string]float64{}
	for _, op := range ops {
		if op.Kind != "read" || op.Outcome != OpOK {
			continue
		}
		in := logInput{op: op.ID, key: "read/" + op.Purpose}
		shown := map[uint64]bool{}
		for _, e := range op.Read {
			in.max = max(in.max, e.Index)
			shown[e.Index] = true
			x := f.line(e.Index)
			if x == nil || x.Header.Type != e.Type || x.Header.RequestID != e.RequestID {
				got := "nothing"
				if x != nil {
					got = describeLine(*x)
				}
				h.bad = append(h.bad, fmt.Sprintf("read op %d showed %s at %d, the final ledger holds %s there",
					op.ID, describeLine(lineOf(e)), e.Index, got))
				continue
			}
			if k := readKey(e); ours[k] {
				if t, ok := seen[k]; !ok || op.Complete < t {
					seen[k] = op.Complete
				}
			}
		}
		for _, i := range f.between(op.From, in.max) {
			if !shown[i] {
				h.bad = append(h.bad, fmt.Sprintf("read op %d (entries %d to %d) did not show %s at %d, which the final ledger holds",
					op.ID, op.From, in.max, f.byIdx[i], i))
			}
		}
		h.ops = append(h.ops, porcupine.Operation{ClientId: op.Client, Input: in, Call: us(op.Invoke), Return: us(op.Complete)})
	}
	for _, a := range appends {
		in := logInput{op: a.op.ID, append: true, key: a.key}
		if a.index != nil && a.op.Outcome == OpOK {
			if why := f.holds(*a.index, a.key); why != "" {
				h.bad = append(h.bad, fmt.Sprintf("op %d: %s acknowledged at %d, but the final ledger's %s", a.op.ID, a.key, *a.index, why))
				continue
			}
			in.index = *a.index
			h.ops = append(h.ops, porcupine.Operation{ClientId: a.op.Client, Input: in, Call: us(a.op.Invoke), Return: us(a.op.Complete)})
			continue
		}
		i, ok := f.at[a.key]
		if !ok {
			h.dropped++
			continue // never appended
		}
		h.resolved++
		in.index = i
		ret := end
		if t, ok := seen[a.key]; ok && t >= a.op.Invoke {
			ret = t
		}
		h.ops = append(h.ops, porcupine.Operation{ClientId: a.op.Client, Input: in, Call: us(a.op.Invoke), Return: us(max(ret, a.op.Invoke))})
	}
	sort.SliceStable(h.ops, func(i, j int) bool { return h.ops[i].Call < h.ops[j].Call })
	ranked(h.ops)
	return h
}

// lineOf is e as a line of an export, for describeLine.
func lineOf(e readEntry) (x format.ExportLine) {
	x.Index, x.Header.Type, x.Header.RequestID = e.Index, e.Type, e.RequestID
	return x
}

// checkLinearizable checks one agency's history against its final ledger
// l (end: when the run ended, in the operations' ms) within timeout (0:
// linearTimeout of the history); it returns the verdict and a sentence of
// evidence. porcupine's Unknown (its time ran out) is a verdict the
// caller fails, with its reason.
func checkLinearizable(ops []*Op, l ledgerOf, end float64, timeout time.Duration) (porcupine.CheckResult, string) {
	h := logHistory(ops, l, end)
	if timeout == 0 {
		timeout = linearTimeout(len(h.ops))
	}
	about := fmt.Sprintf("%d operations on the log (%d unknown appends resolved from the final ledger, %d not in it dropped)",
		len(h.ops), h.resolved, h.dropped)
	if len(h.bad) > 0 {
		return porcupine.Illegal, fmt.Sprintf("%s; %d differ from the final ledger%s", about, len(h.bad), evidence(h.bad))
	}
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(logModel, h.ops, timeout)
	switch res {
	case porcupine.Ok:
		return res, about
	case porcupine.Unknown:
		return res, fmt.Sprintf("%s; porcupine found no verdict in %s (timed out): the history is not checked", about, timeout)
	}
	return res, fmt.Sprintf("%s; %s", about, firstIllegal(h.ops, timeout-time.Since(start)))
}

// firstIllegal names the operation that makes the history illegal: the
// shortest illegal prefix (operations in call order, ranked among
// themselves) ends with it. (A prefix of a linearizable history is
// linearizable: leaving appends out only lowers the log's length at each
// step, which no append or read of an append-only log minds.)
func firstIllegal(ops []porcupine.Operation, budget time.Duration) string {
	deadline := time.Now().Add(max(budget, 10*time.Second))
	lo, hi := 0, len(ops) // ops[:lo] legal, ops[:hi] illegal
	for hi-lo > 1 && time.Now().Before(deadline) {
		mid := (lo + hi) / 2
		prefix := ranked(append([]porcupine.Operation(nil), ops[:mid]...))
		switch porcupine.CheckOperationsTimeout(logModel, prefix, time.Until(deadline)) {
		case porcupine.Ok:
			lo = mid
		case porcupine.Illegal:
			hi = mid
		default:
			return "no linearization (the search for the first illegal operation ran out of time)"
		}
	}
	bad := ops[hi-1]
	// Those done before it began that an append-only log puts after it.
	var before, after []string
	for _, op := range ops[:hi-1] {
		if op.Return >= bad.Call {
			continue
		}
		d := logModel.DescribeOperation(op.Input, nil)
		before = append(before, d)
		if logPos(op.Input.(logInput)) > logPos(bad.Input.(logInput)) {
			after = append(after, d)
		}
	}
	if len(after) == 0 {
		after = before[max(0, len(before)-3):]
	}
	return fmt.Sprintf("no linearization: the first %d operations (in call order) have one, not with %s; done before it began: %s",
		hi-1, logModel.DescribeOperation(bad.Input, nil), strings.Join(after[:min(len(after), 3)], "; "))
}

// logPos is where an append-only log puts an operation: an append at its
// index, a read just after the last entry it showed.
func logPos(in logInput) float64 {
	if in.append {
		return float64(in.index)
	}
	return float64(in.max) + 0.5
}

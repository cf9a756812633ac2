package testnet

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"

	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// The linearizability check of one agency's ledger: a model of an
// append-only log, checked with porcupine against the history of the
// workload's appends (each query's match_out and match_result, each read's
// own ledger_read entry) and reads.
//
// The agency's final ledger (its last export, once healed) fixes what the
// log holds, so the history is checked in two parts:
//
//   - content, against the final ledger, outside porcupine: every
//     acknowledged append is at the index it was given; every entry a read
//     showed is the final ledger's entry at that index; and a read showed
//     every one of the workload's entries the final ledger holds between
//     its first and its last index (a log only grows at its end);
//   - order, with porcupine: the model's state is only the length the log
//     is known to have (a number, so porcupine's cache keys are small and
//     Equal is ==). An append at index i is legal while i is at or above
//     that length (the entry is not there yet) and makes it i+1; a read
//     that showed entries up to index m took a snapshot of some length N
//     with m < N ≤ next, next being the index of the first of the
//     history's appends above m (which it did not show): it is legal while
//     the length is at most next, and makes it at least m+1.
//
// An operation whose outcome is unknown is resolved from the final ledger
// before the check: an append that is not in it never happened and leaves
// the history; one that is has its index there, and returned at the
// latest when the first read that showed it completed (else at the end of
// the run). A read without answer showed nothing and leaves the history
// (its own ledger_read entry is an unknown append). No operation stays
// open to the end of time, which is what made porcupine's search (and its
// memory) grow with every unknown operation (defect 12).

// logInput is one operation on the log: an append at index, or a read
// that showed entries up to max. rank and count place it among the
// history's appends (ranked).
type logInput struct {
	op     int    // Op.ID
	append bool   // an append of key; else a read
	key    string // the appended entry's key, or the read's own key
	index  uint64 // an append: its index in the log
	max    uint64 // a read: the highest index it showed (its own entry's at least)
	rank   int    // an append: 1 + the number of the history's appends at lower indexes
	count  int    // a read: the number of the history's appends at or below max
}

// logModel's state is an int: how many of the history's appends the log
// holds. It is the model of an append-only log seen through the
// history's own entries: an append at index i is legal while the log is
// shorter than i (i ≥ the log's length) and makes it i+1; a read that
// showed entries up to m took a snapshot that held every entry at or
// below m and none of the history's above it (the read shows every entry
// of the workload's types in its window). Counted in the history's
// appends alone, an append is legal exactly when it is the next one by
// index, and a read exactly when the log holds the appends at or below
// its m and no other: the state is one number, Equal is ==, and
// porcupine's search has no wrong turn to take but the order of
// concurrent reads and appends.
var logModel = porcupine.Model{
	Init: func() any { return 0 },
	Step: func(st, in, _ any) (bool, any) {
		k, i := st.(int), in.(logInput)
		if i.append {
			if i.rank != k+1 {
				return false, k // an index below the log's length, or one that skips an append not yet done
			}
			return true, k + 1
		}
		return i.count == k, k // else a stale read, or one that shows an append not yet done
	},
	Equal: func(a, b any) bool { return a.(int) == b.(int) },
	Hash:  func(a any) uint64 { return uint64(a.(int)) },
	DescribeOperation: func(in, _ any) string {
		i := in.(logInput)
		if i.append {
			return fmt.Sprintf("op %d append %s at %d", i.op, i.key, i.index)
		}
		return fmt.Sprintf("op %d read up to %d", i.op, i.max)
	},
}

// ranked sets the rank of every append of ops and the count of every
// read among ops' appends, in place.
func ranked(ops []porcupine.Operation) []porcupine.Operation {
	var idx []uint64
	for _, op := range ops {
		if in := op.Input.(logInput); in.append {
			idx = append(idx, in.index)
		}
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	for j := range ops {
		in := ops[j].Input.(logInput)
		if in.append {
			in.rank = 1 + sort.Search(len(idx), func(k int) bool { return idx[k] >= in.index })
		} else {
			in.count = sort.Search(len(idx), func(k int) bool { return idx[k] > in.max })
		}
		ops[j].Input = in
	}
	return ops
}

// finalLog is the final ledger as the check needs it: the index of each
// of the workload's keys, and the workload's keys by index.
type finalLog struct {
	l     ledgerOf
	at    map[string]uint64 // key → its first index
	ours  []uint64          // indexes of the workload's keys, ascending
	byIdx map[uint64]string // index → the workload's key there
}

func newFinalLog(l ledgerOf, ours map[string]bool) *finalLog {
	f := &finalLog{l: l, at: map[string]uint64{}, byIdx: map[uint64]string{}}
	for _, x := range l.lines {
		k := lineKey(x)
		if !ours[k] {
			continue
		}
		if _, dup := f.at[k]; !dup {
			f.at[k] = x.Index
		}
		f.ours = append(f.ours, x.Index)
		f.byIdx[x.Index] = k
	}
	sort.Slice(f.ours, func(i, j int) bool { return f.ours[i] < f.ours[j] })
	return f
}

// line is the final ledger's entry at index i, or nil.
func (f *finalLog) line(i uint64) *format.ExportLine {
	ls := f.l.lines
	j := sort.Search(len(ls), func(j int) bool { return ls[j].Index >= i })
	if j < len(ls) && ls[j].Index == i {
		return &ls[j]
	}
	return nil
}

// holds says whether the final ledger's entry at i is the workload's key
// k: "" if so, else what it holds there.
func (f *finalLog) holds(i uint64, k string) string {
	x := f.line(i)
	switch {
	case x == nil:
		return fmt.Sprintf("no entry %d (it holds %d)", i, len(f.l.lines))
	case lineKey(*x) == k:
		return ""
	case x.Body == nil && x.Header.Type == ledger.TypeLedgerRead && len(k) > 5 && k[:5] == "read/":
		return "" // a pruned ledger_read: its purpose is gone, its type agrees
	}
	return fmt.Sprintf("entry %d is %s", i, describeLine(*x))
}

// between lists the workload's keys with indexes in [lo, hi].
func (f *finalLog) between(lo, hi uint64) []uint64 {
	j := sort.Search(len(f.ours), func(j int) bool { return f.ours[j] >= lo })
	var out []uint64
	for ; j < len(f.ours) && f.ours[j] <= hi; j++ {
		out = append(out, f.ours[j])
	}
	return out
}

func describeLine(x format.ExportLine) string {
	if x.Header.RequestID != "" {
		return x.Header.Type.String() + " " + short(x.Header.RequestID)
	}
	return x.Header.Type.String()
}

// lineKey is the model's key of an entry of the final ledger.
func lineKey(x format.ExportLine) string {
	e := readEntry{Index: x.Index, Type: x.Header.Type, RequestID: x.Header.RequestID}
	if x.Body != nil {
		e.Purpose = x.Body.Purpose
	}
	return readKey(e)
}

// readKey is the model's key of an entry a read showed, or "" for an
// entry that is not the workload's.
func readKey(e readEntry) string {
	switch {
	case (e.Type == ledger.TypeMatchOut || e.Type == ledger.TypeDenial) && e.RequestID != "":
		return "out/" + e.RequestID
	case e.Type == ledger.TypeMatchResult && e.RequestID != "":
		return "result/" + e.RequestID
	case e.Type == ledger.TypeLedgerRead && len(e.Purpose) > 11 && e.Purpose[:11] == "chaos read ":
		return "read/" + e.Purpose
	}
	return ""
}

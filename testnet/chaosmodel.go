package testnet

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/xborder/xborder/ledger"
)

// The linearizability check of one agency's ledger: a model of an
// append-only log, checked with porcupine against the history of the
// workload's appends (each query's match_out and match_result, each read's
// own ledger_read entry) and reads.
//
// The log holds entries the workload does not see (syncs, match_in of
// partners' queries, imports, checkpoints…), so the model knows only a
// lower bound of the log's length: an append is legal when its index is
// above every index already linearized, and a read (a snapshot of the
// entries of the read's types, taken after its own ledger_read entry was
// applied) is legal when it shows every linearized append at the index it
// got, shows none of the workload's appends that are not linearized yet,
// and reaches at least the highest linearized index. An operation whose
// outcome is unknown may have appended (at an index nobody saw) or not.

// logInput is one operation on the log.
type logInput struct {
	op     int    // Op.ID
	append bool   // an append of key; else a read
	key    string // the appended entry's key, or the read's own key
}

// logOutput is what it returned.
type logOutput struct {
	unknown bool
	index   uint64            // an append's index
	seen    map[string]uint64 // a read: the workload's keys it showed, at their indexes
	from    uint64            // a read: the lowest index it asked for (Filter.After)
	max     uint64            // a read: the highest index it showed (its own included)
}

// logState is the model's state: the highest linearized index, and each
// linearized key with its index (unknownIndex for an append without
// answer), as an immutable list so that a step shares its predecessor's
// (an append costs O(1), a read O(keys)). hash is an order-independent
// hash of the keys and indexes: two states with the same last, count and
// hash are taken as equal (a collision, at odds of 2^-64, could only hide
// a violation, never invent one).
type logState struct {
	last uint64
	n    int
	hash uint64
	head *keyNode
}

type keyNode struct {
	key  string
	idx  uint64
	next *keyNode
}

// unknownIndex marks a linearized append whose index nobody saw.
const unknownIndex = math.MaxUint64

func (s logState) with(key string, idx uint64) logState {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write(binary.BigEndian.AppendUint64(nil, idx))
	return logState{last: s.last, n: s.n + 1, hash: s.hash ^ h.Sum64(), head: &keyNode{key: key, idx: idx, next: s.head}}
}

var logModel = porcupine.Model{
	Init: func() any { return logState{} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(logState), in.(logInput), out.(logOutput)
		if i.append {
			if o.unknown {
				return true, s.with(i.key, unknownIndex)
			}
			if o.index <= s.last { // index 0 is init's, never the workload's
				return false, s
			}
			next := s.with(i.key, o.index)
			next.last = o.index
			return true, next
		}
		if o.unknown {
			return true, s // a read without answer showed nothing
		}
		if o.max < s.last {
			return false, s // a stale read: it misses a linearized append
		}
		matched := 0
		for k := s.head; k != nil; k = k.next {
			got, ok := o.seen[k.key]
			switch {
			case ok && k.idx != unknownIndex && got != k.idx:
				return false, s // shown at another index
			case ok:
				matched++
			case k.idx != unknownIndex && k.idx >= o.from && k.idx <= o.max:
				return false, s // an acknowledged append lost
			}
		}
		if matched != len(o.seen) {
			return false, s // shows an append not linearized yet
		}
		s.last = o.max
		return true, s
	},
	Equal: func(a, b any) bool {
		x, y := a.(logState), b.(logState)
		return x.last == y.last && x.n == y.n && x.hash == y.hash
	},
	Hash: func(a any) uint64 { x := a.(logState); return x.hash ^ x.last },
	DescribeOperation: func(in, out any) string {
		i, o := in.(logInput), out.(logOutput)
		switch {
		case o.unknown:
			return fmt.Sprintf("op %d %s -> unknown", i.op, i.key)
		case i.append:
			return fmt.Sprintf("op %d append %s -> %d", i.op, i.key, o.index)
		}
		return fmt.Sprintf("op %d read -> %d of ours, up to %d", i.op, len(o.seen), o.max)
	},
}

// logHistory turns an agency's operations into porcupine's operations.
// An operation without answer completes at the end of time.
func logHistory(ops []*Op) []porcupine.Operation {
	// The keys of the workload's appends: a read shows other entries too
	// (partners' denials carry their own request IDs), which are not ours.
	ours := map[string]bool{}
	for _, op := range ops {
		for _, p := range op.Partners {
			if p.RequestID != "" {
				ours["out/"+p.RequestID], ours["result/"+p.RequestID] = true, true
			}
		}
		if op.Kind == "read" {
			ours["read/"+op.Purpose] = true
		}
	}
	var out []porcupine.Operation
	add := func(op *Op, in logInput, o logOutput) {
		ret := int64(op.Complete * 1000)
		if o.unknown {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: in, Output: o, Call: int64(op.Invoke * 1000), Return: ret})
	}
	for _, op := range ops {
		switch op.Kind {
		case "query":
			for _, p := range op.Partners {
				if p.RequestID == "" {
					continue
				}
				for _, x := range []struct {
					typ string
					idx *uint64
				}{{"out", p.OutboundIndex}, {"result", p.ResultIndex}} {
					in := logInput{op: op.ID, append: true, key: x.typ + "/" + p.RequestID}
					if x.idx == nil || op.Outcome != OpOK {
						add(op, in, logOutput{unknown: true})
						continue
					}
					add(op, in, logOutput{index: *x.idx})
				}
			}
		case "read":
			in := logInput{op: op.ID, key: "read/" + op.Purpose}
			if op.Outcome != OpOK {
				add(op, logInput{op: op.ID, append: true, key: in.key}, logOutput{unknown: true})
				continue
			}
			o := logOutput{seen: map[string]uint64{}, from: op.From}
			for _, e := range op.Read {
				o.max = max(o.max, e.Index)
				if k := readKey(e); ours[k] {
					o.seen[k] = e.Index
				}
			}
			// The read's own entry is an append the read shows.
			own, ok := o.seen[in.key]
			if !ok {
				add(op, logInput{op: op.ID, append: true, key: in.key}, logOutput{unknown: true})
			} else {
				add(op, logInput{op: op.ID, append: true, key: in.key}, logOutput{index: own})
			}
			add(op, in, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
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

// checkLinearizable checks one agency's history; it returns porcupine's
// verdict and a sentence of evidence.
func checkLinearizable(ops []*Op, timeout time.Duration) (porcupine.CheckResult, string) {
	h := logHistory(ops)
	res, info := porcupine.CheckOperationsVerbose(logModel, h, timeout)
	if res != porcupine.Illegal {
		return res, fmt.Sprintf("%d operations on the log", len(h))
	}
	// The longest partial linearization names where it got stuck.
	var longest []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, l := range part {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	var tail []string
	for _, op := range longest[max(0, len(longest)-3):] {
		tail = append(tail, logModel.DescribeOperation(op.Input, op.Output))
	}
	return res, fmt.Sprintf("%d operations; the longest linearization (%d of them) ends with: %s; no operation left can follow it",
		len(h), len(longest), strings.Join(tail, "; "))
}

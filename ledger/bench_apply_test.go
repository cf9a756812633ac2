package ledger

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// BenchmarkApplyBatch measures the state machine alone: Raft entries of 64
// append commands of a 1 KiB entry each (a group commit's batch), on a
// badger state database opened as Open opens it. ns/op and cpu-ns/op
// (the process's CPU, badger's background work included) are per command.
func BenchmarkApplyBatch(b *testing.B) {
	db, err := badger.Open(stateOptions(dbOptions(b.TempDir(), nil, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	f, err := newFSM(db, discard())
	if err != nil {
		b.Fatal(err)
	}
	const per = 64
	e := kib(0)
	logs := make([][]*raft.Log, (b.N+per-1)/per)
	idx := uint64(0)
	for i := range logs {
		var members [][]byte
		for range per {
			idx++
			members = append(members, must(encodeCommand(&command{Op: opAppend, ID: fmt.Sprintf("c%09d", idx), Time: int64(idx), Entry: &e})))
		}
		logs[i] = []*raft.Log{{Index: uint64(i + 1), Type: raft.LogCommand, Data: encodeBatch(members)}}
	}
	cpu0 := cpuTime(b)
	b.ResetTimer()
	defer func() { b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(len(logs)*per), "cpu-ns/op") }()
	for _, batch := range logs {
		for _, r := range f.ApplyBatch(batch) {
			if err, ok := r.(error); ok {
				b.Fatal(err)
			}
		}
	}
}

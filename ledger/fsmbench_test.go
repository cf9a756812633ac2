package ledger

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// BenchmarkApplyBatch measures the state machine alone: one ApplyBatch of
// 64 Raft entries, each one append command of a 1 KiB entry, on a badger
// state database opened as Open opens it. ns/op is per command.
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
		for range per {
			idx++
			data := must(encodeCommand(&command{Op: opAppend, ID: fmt.Sprintf("c%09d", idx), Time: int64(idx), Entry: &e}))
			logs[i] = append(logs[i], &raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
		}
	}
	b.ResetTimer()
	for _, batch := range logs {
		for _, r := range f.ApplyBatch(batch) {
			if err, ok := r.(error); ok {
				b.Fatal(err)
			}
		}
	}
}

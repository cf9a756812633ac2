package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/ledger"
)

// raftGroup is one Raft group's ledger as the node's components use it:
// reads pass through to the ledger; every write (Append, Admit, Put,
// Delete) is timed into xborder_ledger_commit_seconds under the group's
// name and the operation, so components write an entry or a record in one
// call instead of wrapping each write in a timing closure.
type raftGroup struct {
	*ledger.Ledger
	name   string
	commit *prometheus.HistogramVec // nil: writes are not timed (tests)
}

// newRaftGroup wraps the ledger of group name; m may be nil.
func newRaftGroup(name string, l *ledger.Ledger, m *metrics) *raftGroup {
	g := &raftGroup{Ledger: l, name: name}
	if m != nil {
		g.commit = m.commit
	}
	return g
}

// timed runs one write and records its latency when it succeeds.
func (g *raftGroup) timed(op string, fn func() (ledger.Receipt, error)) (ledger.Receipt, error) {
	start := time.Now()
	r, err := fn()
	if err == nil && g.commit != nil {
		g.commit.WithLabelValues(g.name, op).Observe(time.Since(start).Seconds())
	}
	return r, err
}

// Append commits an audit entry (see ledger.Ledger.Append).
func (g *raftGroup) Append(ctx context.Context, e ledger.Entry) (ledger.Receipt, error) {
	return g.timed("append", func() (ledger.Receipt, error) { return g.Ledger.Append(ctx, e) })
}

// Admit commits an admission (see ledger.Ledger.Admit).
func (g *raftGroup) Admit(ctx context.Context, a ledger.Admission) (ledger.Receipt, error) {
	return g.timed("admit", func() (ledger.Receipt, error) { return g.Ledger.Admit(ctx, a) })
}

// Put commits a replicated record (see ledger.Ledger.Put).
func (g *raftGroup) Put(ctx context.Context, ns, key string, value []byte) (ledger.Receipt, error) {
	return g.timed("put", func() (ledger.Receipt, error) { return g.Ledger.Put(ctx, ns, key, value) })
}

// Swap replaces a replicated record while it is unchanged (see
// ledger.Ledger.Swap).
func (g *raftGroup) Swap(ctx context.Context, ns, key string, old ledger.Digest, value []byte) (ledger.Receipt, error) {
	return g.timed("swap", func() (ledger.Receipt, error) { return g.Ledger.Swap(ctx, ns, key, old, value) })
}

// SwapAppend replaces a replicated record while it is unchanged and
// appends an entry, both or neither (see ledger.Ledger.SwapAppend).
func (g *raftGroup) SwapAppend(ctx context.Context, ns, key string, old ledger.Digest, value []byte, e ledger.Entry) (ledger.Receipt, error) {
	return g.timed("swap_append", func() (ledger.Receipt, error) { return g.Ledger.SwapAppend(ctx, ns, key, old, value, e) })
}

// DeleteAppend removes a replicated record while it is unchanged and
// appends an entry, both or neither (see ledger.Ledger.DeleteAppend).
func (g *raftGroup) DeleteAppend(ctx context.Context, ns, key string, old ledger.Digest, e ledger.Entry) (ledger.Receipt, error) {
	return g.timed("delete_append", func() (ledger.Receipt, error) { return g.Ledger.DeleteAppend(ctx, ns, key, old, e) })
}

// Delete removes a replicated record (see ledger.Ledger.Delete).
func (g *raftGroup) Delete(ctx context.Context, ns, key string) (ledger.Receipt, error) {
	return g.timed("delete", func() (ledger.Receipt, error) { return g.Ledger.Delete(ctx, ns, key) })
}

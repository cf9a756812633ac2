package node

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// CompactWait is how long `xborder data compact` waits for every replica
// of the data group to have compacted its disk (within the CLI's 60 s).
const CompactWait = 45 * time.Second

// CompactData puts a new erasure request in the data group, so that every
// replica compacts its disk as after a removal (eraseLoop), waits until
// every member has recorded it done or CompactWait (or ctx) ends, and
// appends one audit entry: type remove, purpose "compact", the count of
// replicas that compacted, and the pending ones in the body's counts only
// (docs/holdings.md, "Removal and erasure"). A steward who may import some
// kind may compact.
func (h *holdings) CompactData(ctx context.Context, u httpapi.User) (httpapi.CompactResult, error) {
	var out httpapi.CompactResult
	allowed := false
	for _, k := range ident.Kinds() {
		if h.decideKind(u, "import", k.String()) == nil {
			allowed = true
			break
		}
	}
	if !allowed {
		return out, fmt.Errorf("compact data: role %s may import no kind under the policy in force: %w", u.Role, httpapi.ErrForbidden)
	}
	id, err := h.requestErase(ctx)
	if err != nil {
		return out, fmt.Errorf("compact data: %w", err)
	}
	out.Request = id
	want, _ := strconv.ParseUint(id, 10, 64)
	wait := h.compactWait
	if wait == 0 {
		wait = CompactWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for out.Compacted, out.Pending = h.compacted(want); len(out.Pending) > 0 && wctx.Err() == nil; out.Compacted, out.Pending = h.compacted(want) {
		select {
		case <-wctx.Done():
		case <-t.C:
		}
	}
	r, err := h.audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeRemove, Outcome: ledger.OutcomeOK, Count: uint64(len(out.Compacted)),
			Replica: h.replica},
		Body: ledger.Body{Actor: actorName(u), Purpose: fmt.Sprintf("compact: %d replicas compacted, %d pending",
			len(out.Compacted), len(out.Pending))},
	})
	if err != nil {
		return out, fmt.Errorf("compact data: %w", err)
	}
	out.Index = r.Index
	return out, nil
}

// compacted splits the data group's members into those that recorded an
// erasure at or after request want and the others.
func (h *holdings) compacted(want uint64) (done, pending []string) {
	ms, err := h.data.Members()
	if err != nil {
		return nil, []string{"(members unknown: " + err.Error() + ")"}
	}
	for _, m := range ms {
		v, err := h.data.Get(nsErase, "done/"+m.ID)
		got, perr := strconv.ParseUint(string(v), 10, 64)
		if err == nil && perr == nil && got >= want {
			done = append(done, m.ID)
		} else {
			pending = append(pending, m.ID)
		}
	}
	slices.Sort(done)
	slices.Sort(pending)
	return done, pending
}

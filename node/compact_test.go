package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// TestCompactData: a steward's `data compact` waits until the replica has
// compacted and records a remove entry (purpose compact) with the count; a
// user who may import no kind is refused through the API. The script test
// data_import runs the verb through the CLI.
func TestCompactData(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	n, _ := startStoppable(t, "GB", 0)
	applyExamplePolicy(t, n)
	st := steward(t, n, n.APIURL())
	poll(t, "steward known", time.Minute, func() bool { _, err := st.DataStats(ctx); return err == nil })

	if _, err := n.admin.CompactData(ctx); !errors.Is(err, httpapi.ErrForbidden) {
		t.Errorf("admin's CompactData = %v; want forbidden (the example policy lets stewards import)", err)
	}
	// A compaction takes seconds, more under -race on a loaded machine
	// than the API's wait: the steward's call goes to the holdings here.
	n.holdings.compactWait = 10 * time.Minute
	res, err := n.holdings.CompactData(ctx, stew)
	if err != nil || !slices.Equal(res.Compacted, []string{"r1"}) || len(res.Pending) != 0 {
		t.Fatalf("CompactData = %+v, %v; want r1 compacted", res, err)
	}
	e, err := n.Audit().Entry(res.Index, 0)
	if err != nil || e.Entry.Type != ledger.TypeRemove || e.Entry.Count != 1 || e.Entry.Body.Purpose != "compact: 1 replicas compacted, 0 pending" {
		t.Errorf("entry %d = %+v, %v; want remove, count 1, purpose compact", res.Index, e.Entry, err)
	}
	// Again: a new request, done again.
	res2, err := n.holdings.CompactData(ctx, stew)
	if err != nil || res2.Request == res.Request || len(res2.Compacted) != 1 {
		t.Errorf("second CompactData = %+v, %v; want a new request, compacted", res2, err)
	}
}

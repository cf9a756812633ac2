package node

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

// TestSameSetsWhenBuiltAfterRemoval: a removal rewrites batches that
// earlier set versions were built from; a replica that joins afterwards
// builds from scratch. Every replica, the late one too, serves the same
// bytes for (kind, epoch), without the removed identifier.
func TestSameSetsWhenBuiltAfterRemoval(t *testing.T) {
	if testing.Short() {
		t.Skip("four replicas")
	}
	noLeaks(t)
	ctx := context.Background()
	r1, nodes := startClockedAgency(t, "GB", &testClock{})
	st := steward(t, r1, r1.APIURL())
	poll(t, "steward known", time.Minute, func() bool { _, err := st.DataStats(ctx); return err == nil })
	values := phoneValues(20)
	importRows(t, st, "phone", values[:10]...)
	importRows(t, st, "phone", values[10:]...)
	for _, n := range nodes {
		poll(t, "version 2 recorded on every replica", time.Minute, func() bool { return builtDigest(n, "phone", 1, 2) != nil })
	}
	res, err := st.RemoveRows(ctx, httpapi.RemoveRows{Kind: "phone", Region: "GB", Rows: []httpapi.Row{{Line: 2, Value: values[3]}}})
	if err != nil || res.Removed != 1 {
		t.Fatalf("RemoveRows = %+v, %v; want 1 removed", res, err)
	}
	r4, _ := joinReplica(t, r1, "r4")
	nodes = append(nodes, r4)
	poll(t, "r4 a member", time.Minute, func() bool { return r4.Ready() == nil && r4.replicas.isMember("r4") })

	built := func(n *Node) bool {
		m, err := readManifest(n.Data(), "phone", 1)
		if err != nil {
			return false
		}
		for _, reach := range setReaches {
			ls := n.sets.get("phone", 1, reach)
			if ls == nil {
				return false
			}
			ls.mu.Lock()
			done := ls.built == len(m.Versions) && ls.recorded == len(ls.segments)
			ls.mu.Unlock()
			if !done {
				return false
			}
		}
		return true
	}
	for _, n := range nodes {
		poll(t, "every version built and checked on "+n.fc.ReplicaID(), time.Minute, func() bool { return built(n) })
	}
	c, err := ident.Canonical(ident.Phone, values[3], ident.Options{Region: "GB"})
	if err != nil {
		t.Fatal(err)
	}
	removed := output(t, r1.Node, ident.Phone, c, 1)
	want, err := nodes[0].syncOwner.Holding(ctx, "phone", 1, reachOpen)
	if err != nil {
		t.Fatalf("r1 serves nothing: %v", err)
	}
	for _, n := range nodes {
		h, err := n.syncOwner.Holding(ctx, "phone", 1, reachOpen)
		if err != nil {
			t.Errorf("%s serves nothing: %v", n.fc.ReplicaID(), err)
			continue
		}
		if h.Base != want.Base || len(h.Segments) != len(want.Segments) {
			t.Errorf("%s serves base %d with %d segments; r1 base %d with %d", n.fc.ReplicaID(), h.Base, len(h.Segments), want.Base, len(want.Segments))
			continue
		}
		for i := range h.Segments {
			if !bytes.Equal(h.Segments[i], want.Segments[i]) {
				t.Errorf("%s serves segment %d with other bytes than r1", n.fc.ReplicaID(), i)
			}
		}
		ls := n.sets.get("phone", 1, reachOpen)
		ls.mu.Lock()
		in := ls.view.Contains(removed)
		ls.mu.Unlock()
		if in {
			t.Errorf("%s still serves the removed identifier", n.fc.ReplicaID())
		}
	}

	// data stats reports the same set version and digest on every replica.
	var first []httpapi.SetStats
	for i, n := range nodes {
		ds, err := n.holdings.DataStats(ctx, httpapi.User{Name: "sam", Role: "steward"})
		if err != nil {
			t.Fatalf("DataStats on %s: %v", n.fc.ReplicaID(), err)
		}
		// One set per reach; the base by decree has the same version in
		// each, however many versions added nothing to a reach.
		if len(ds.Sets) != len(setReaches) {
			t.Errorf("DataStats on %s: sets %+v; want one per reach", n.fc.ReplicaID(), ds.Sets)
			continue
		}
		for j, set := range ds.Sets {
			if set.Kind != "phone" || set.Epoch != 1 || set.Reach != setReaches[j] || !set.Serving ||
				set.Version != len(want.Segments)+int(want.Base)-1 || len(set.Digest) != 64 {
				t.Errorf("DataStats on %s: set %+v; want phone epoch 1 reach %s served at version %d with a digest",
					n.fc.ReplicaID(), set, setReaches[j], len(want.Segments)+int(want.Base)-1)
			}
		}
		if i == 0 {
			first = ds.Sets
		} else if !slices.Equal(ds.Sets, first) {
			t.Errorf("DataStats on %s: sets %+v; r1 %+v", n.fc.ReplicaID(), ds.Sets, first)
		}
	}

	// A replica that cannot serve a set of a live epoch says so (the
	// exchange answers "unavailable", and the partner asks the next
	// replica) rather than that it has no such set.
	ls := r4.sets.get("phone", 1, reachOpen)
	ls.mu.Lock()
	ls.badAt = ls.recorded
	ls.mu.Unlock()
	if _, err := r4.syncOwner.Holding(ctx, "phone", 1, reachOpen); err == nil || errors.Is(err, exchange.ErrNoSet) {
		t.Errorf("Holding of a set r4 cannot serve = %v; want an error other than ErrNoSet", err)
	}
	if _, _, err := r4.admission.Responder("phone", 1, reachOpen); err == nil || errors.Is(err, exchange.ErrNoSet) {
		t.Errorf("Responder of a set r4 cannot serve = %v; want an error other than ErrNoSet", err)
	}
	if _, err := r4.syncOwner.Holding(ctx, "phone", 9, reachOpen); !errors.Is(err, exchange.ErrNoSet) {
		t.Errorf("Holding of an epoch that is not live = %v; want ErrNoSet", err)
	}
}

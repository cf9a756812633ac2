package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

// TestRotationBaseHoldsCommittedBatches: the base of a new epoch holds the
// batches of committed imports only; an import still open at the rotation
// (its batches stored, not referenced) joins the new epoch as a version of
// its own when it commits, never through the base.
func TestRotationBaseHoldsCommittedBatches(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	gb, st, values := stewardedGB(t, 20)
	_, committed := importRows(t, st, "phone", values[:10]...)
	open := beginRows(t, st, 5, values[10:])

	rot, err := gb.admin.RotateKeys(ctx)
	if err != nil || rot.NextEpoch != 2 {
		t.Fatalf("RotateKeys = %+v, %v; want epoch 2 next", rot, err)
	}
	m, err := gb.holdings.manifest("phone", 2)
	if err != nil || len(m.Versions) != 1 {
		t.Fatalf("manifest of epoch 2: %+v, %v; want the base alone", m, err)
	}
	for _, b := range m.Versions[0] {
		if strings.Contains(b, "/"+open+"/") {
			t.Errorf("the base of epoch 2 holds batch %s of an import not committed", b)
		}
	}
	if len(m.Versions[0]) == 0 {
		t.Errorf("the base of epoch 2 holds no batch; want those of import %s", committed.ID)
	}
	res, err := st.CommitImport(ctx, open, httpapi.CommitImport{})
	if err != nil || res.Imported != 10 {
		t.Fatalf("CommitImport after the rotation = %+v, %v; want 10 imported", res, err)
	}
	m, err = gb.holdings.manifest("phone", 2)
	if err != nil || len(m.Versions) != 2 {
		t.Fatalf("manifest of epoch 2 after the commit: %+v, %v; want the base and one version", m, err)
	}
	for _, b := range m.Versions[1] {
		if !strings.Contains(b, "/"+open+"/") {
			t.Errorf("version 2 of epoch 2 holds batch %s of another import", b)
		}
	}
}

// TestSetRebase: when an import needs more room than a set keeps for
// the versions of its epoch, the replica builds a new base of every
// version so far (with room again) instead of leaving the identifiers
// unmatched until keys rotate; a partner that held the old base gets the
// new one whole on its next sync.
func TestSetRebase(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	gb, st, values := stewardedGB(t, 210)
	fr, _ := startStoppable(t, "FR", 0)
	gbCard, _ := gb.admin.Card(ctx)
	frCard, _ := fr.admin.Card(ctx)
	if _, err := fr.admin.AddPartner(ctx, gbCard.Card, gbCard.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, err := gb.admin.AddPartner(ctx, frCard.Card, frCard.Fingerprint); err != nil {
		t.Fatal(err)
	}
	canonical := func(v string) string {
		c, err := ident.Canonical(ident.Phone, v, ident.Options{Region: "GB"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first, late := output(t, gb.Node, ident.Phone, canonical(values[0]), 1), output(t, gb.Node, ident.Phone, canonical(values[200]), 1)

	// The smallest set (psi.MinCapacity 1,024) pads its base to 896
	// entries and keeps 128 for later versions: 200 more do not fit.
	importRows(t, st, "phone", values[:10]...)
	poll(t, "version 1 built", time.Minute, func() bool { _, v, ok := gb.sets.responder("phone", 1, reachOpen); return ok && v == 1 })
	s, _, _, fresh, err := fr.partnerSets.partnerSet(ctx, "GB", "phone", reachOpen)
	if err != nil || !fresh || s.Base() != 1 || s.Version() != 1 {
		t.Fatalf("FR's first sync: %v, fresh %v, %v; want base 1 version 1", s, fresh, err)
	}
	importRows(t, st, "phone", values[10:]...)
	poll(t, "version 2 built", time.Minute, func() bool { _, v, ok := gb.sets.responder("phone", 1, reachOpen); return ok && v == 2 })
	h, err := gb.syncOwner.Holding(ctx, "phone", 1, reachOpen)
	if err != nil || h.Base != 2 || len(h.Segments) != 1 {
		t.Fatalf("GB's holding after the rebase: %+v, %v; want base 2 alone", h, err)
	}
	stats, err := st.DataStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range stats.Kinds {
		if k.Kind == "phone" && (k.Full || k.Built != 2 || k.Versions != 2 || k.Rows != 210) {
			t.Errorf("stats after the rebase = %+v; want 210 rows, 2 versions built, not full", k)
		}
	}
	if v := metricValue(t, gb.sets.met.full.WithLabelValues("phone", "1")); v != 0 {
		t.Errorf("xborder_set_full{phone,1} = %v; want 0", v)
	}
	fr.partnerSets.expireCopy("GB", "phone", reachOpen)
	fs, _, _, fresh, err := fr.partnerSets.partnerSet(ctx, "GB", "phone", reachOpen)
	if err != nil || !fresh || fs.Base() != 2 || fs.Version() != 2 || !fs.Contains(late) || !fs.Contains(first) {
		t.Fatalf("FR's sync after the rebase: %v, fresh %v, %v; want base 2 holding the first and the last numbers", fs, fresh, err)
	}

	// A restart rebuilds the same view from the local store.
	gb.sets.mu.Lock()
	delete(gb.sets.sets, setKey("phone", 1, reachOpen))
	gb.sets.mu.Unlock()
	ls, err := gb.sets.loadSet("phone", 1, reachOpen)
	if err != nil || !slices.Equal(ls.bases, []int{0, 1}) || !ls.view.Contains(late) || ls.view.Base() != 2 {
		t.Fatalf("reloaded set: bases %v, %v; want [0 1] with base 2 holding the last number", ls.bases, err)
	}
}

// stewardedGB starts a one-replica GB with the example policy and a
// steward's client, and returns n distinct phone numbers to import.
func stewardedGB(t *testing.T, n int) (*testNode, *httpapi.Client, []string) {
	t.Helper()
	gb, _ := startStoppable(t, "GB", 0)
	applyExamplePolicy(t, gb)
	st := steward(t, gb, gb.APIURL())
	poll(t, "steward known", time.Minute, func() bool { _, err := st.DataStats(context.Background()); return err == nil })
	return gb, st, phoneValues(n)
}

// phoneValues returns n distinct UK phone numbers in national form.
func phoneValues(n int) []string {
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("07700 9%05d", i)
	}
	return values
}

// TestRebaseSameBytes: the three replicas of an agency build the same new
// base when a version does not fit (the digest each records is checked
// against the ledger's), and each serves it.
func TestRebaseSameBytes(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	r1, nodes := startClockedAgency(t, "GB", &testClock{})
	st := steward(t, r1, r1.APIURL())
	poll(t, "steward known", time.Minute, func() bool { _, err := st.DataStats(ctx); return err == nil })
	values := phoneValues(210)
	importRows(t, st, "phone", values[:10]...)
	importRows(t, st, "phone", values[10:]...)
	for _, n := range nodes {
		poll(t, "version 2 recorded on every replica", time.Minute, func() bool { return builtDigest(n, "phone", 1, 2) != nil })
	}
	want := *builtDigest(nodes[0], "phone", 1, 2)
	for _, n := range nodes {
		if got := *builtDigest(n, "phone", 1, 2); got != want {
			t.Errorf("%s built version 2 with digest %x; r1 %x", n.fc.ReplicaID(), got[:8], want[:8])
		}
		h, err := n.syncOwner.Holding(ctx, "phone", 1, reachOpen)
		if err != nil || h.Base != 2 || len(h.Segments) != 1 {
			t.Errorf("%s serves %+v, %v; want the new base 2 alone", n.fc.ReplicaID(), h, err)
		}
	}
}

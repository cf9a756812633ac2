package node

import (
	"context"
	"fmt"
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
	m, err := gb.manifest("phone", 2)
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
	m, err = gb.manifest("phone", 2)
	if err != nil || len(m.Versions) != 2 {
		t.Fatalf("manifest of epoch 2 after the commit: %+v, %v; want the base and one version", m, err)
	}
	for _, b := range m.Versions[1] {
		if !strings.Contains(b, "/"+open+"/") {
			t.Errorf("version 2 of epoch 2 holds batch %s of another import", b)
		}
	}
}

// TestSetFull: when an import needs more room than a set keeps for the
// versions of its epoch, the identifiers wait for the next epoch, and the
// node says so (data stats, the xborder_set_full metric) instead of
// leaving them silently unmatched; after keys rotate they are matched.
func TestSetFull(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	gb, st, values := stewardedGB(t, 210)
	// The smallest set (psi.MinCapacity 1,024) pads its base to 896
	// entries and keeps 128 for later versions: 200 more do not fit.
	importRows(t, st, "phone", values[:10]...)
	importRows(t, st, "phone", values[10:]...)
	kindStats := func() httpapi.KindStats {
		s, err := st.DataStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range s.Kinds {
			if k.Kind == "phone" {
				return k
			}
		}
		return httpapi.KindStats{}
	}
	poll(t, "the phone set full", time.Minute, func() bool { return kindStats().Full })
	if k := kindStats(); k.Versions != 2 || k.Built != 1 || k.Rows != 210 {
		t.Errorf("stats of a full set = %+v; want 210 rows, 2 versions, 1 built", k)
	}
	if v := metricValue(t, gb.hmet.full.WithLabelValues("phone", "1")); v != 1 {
		t.Errorf("xborder_set_full{phone,1} = %v; want 1", v)
	}
	late, err := ident.Canonical(ident.Phone, values[200], ident.Options{Region: "GB"})
	if err != nil {
		t.Fatal(err)
	}
	matched := func(e uint64) bool {
		ls := gb.sets.get("phone", e)
		if ls == nil {
			return false
		}
		out := output(t, gb.Node, ident.Phone, late, e)
		ls.mu.Lock()
		defer ls.mu.Unlock()
		return ls.view != nil && ls.view.Contains(out)
	}
	if matched(1) {
		t.Errorf("an identifier of the version that did not fit is in epoch 1's set")
	}
	if _, err := gb.admin.RotateKeys(ctx); err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	poll(t, "epoch 2 in force", time.Minute, func() bool { return gb.currentEpoch() == 2 })
	poll(t, "epoch 2's set holds every row", time.Minute, func() bool { return matched(2) })
	if k := kindStats(); k.Full || k.Epoch != 2 {
		t.Errorf("stats after the rotation = %+v; want epoch 2, not full", k)
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
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("07700 9%05d", i)
	}
	return gb, st, values
}

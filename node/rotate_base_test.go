package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// TestRotationBaseHoldsCommittedBatches: the base of a new epoch holds the
// batches of committed imports only; an import still open at the rotation
// (its batches stored, not referenced) joins the new epoch as a version of
// its own when it commits, never through the base.
func TestRotationBaseHoldsCommittedBatches(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	gb, _ := startStoppable(t, "GB", 0)
	applyExamplePolicy(t, gb)
	st := steward(t, gb, gb.APIURL())
	poll(t, "steward known", time.Minute, func() bool { _, err := st.DataStats(ctx); return err == nil })
	values := make([]string, 20)
	for i := range values {
		values[i] = fmt.Sprintf("07700 9%05d", i)
	}
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

package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

// importAll runs a whole import of phone numbers through cl and returns
// the error of the first call that fails (for goroutines, which may not
// call t.Fatal).
func importAll(ctx context.Context, cl *httpapi.Client, values []string) error {
	im, err := cl.BeginImport(ctx, httpapi.BeginImport{Kind: "phone", Region: "GB"})
	if err != nil {
		return fmt.Errorf("begin import: %w", err)
	}
	rows := make([]httpapi.Row, len(values))
	for i, v := range values {
		rows[i] = httpapi.Row{Line: i + 2, Value: v}
	}
	if _, err := cl.ImportRows(ctx, im.ID, rows); err != nil {
		return fmt.Errorf("import rows: %w", err)
	}
	if _, err := cl.CommitImport(ctx, im.ID, httpapi.CommitImport{}); err != nil {
		return fmt.Errorf("commit import: %w", err)
	}
	return nil
}

// TestRotationKeepsRacingImports: 100 imports committed through the three
// replicas of an agency while keys rotate 5 times. Every committed batch
// is in exactly one version of each later epoch's manifest, and once the
// last old epoch has retired every imported row is in the set that every
// replica serves.
func TestRotationKeepsRacingImports(t *testing.T) {
	if testing.Short() {
		t.Skip("three replicas, 100 imports and 5 rotations")
	}
	noLeaks(t)
	ctx := context.Background()
	r1, nodes := startClockedAgency(t, "GB", &testClock{})
	var clients []*httpapi.Client
	for i, n := range nodes {
		u, err := r1.admin.AddUser(ctx, fmt.Sprintf("steward%d", i), "steward")
		if err != nil {
			t.Fatalf("AddUser: %v", err)
		}
		cl := &httpapi.Client{BaseURL: n.APIURL(), Token: u.Token}
		poll(t, "steward known", time.Minute, func() bool { _, err := cl.DataStats(ctx); return err == nil })
		clients = append(clients, cl)
	}
	const imports, rotations, perImport = 100, 5, 3
	values := phoneValues(imports * perImport)

	var done atomic.Int64
	errs := make(chan error, imports+rotations)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cl := clients[(w+i)%len(clients)]
				if err := importAll(ctx, cl, values[i*perImport:(i+1)*perImport]); err != nil {
					errs <- fmt.Errorf("import %d: %w", i, err)
				}
				done.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range rotations {
			// Spread the rotations over the imports.
			for done.Load() < int64(r*imports/rotations+5) {
				time.Sleep(5 * time.Millisecond)
			}
			for {
				_, err := r1.admin.RotateKeys(ctx)
				if err == nil {
					break
				}
				if !errors.Is(err, httpapi.ErrConflict) {
					errs <- fmt.Errorf("rotation %d: %w", r+1, err)
					return
				}
				time.Sleep(10 * time.Millisecond) // the previous epoch is still being prepared
			}
		}
	}()
	for i := range imports {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	const last = 1 + rotations
	for _, n := range nodes {
		poll(t, "the last epoch in force and the old ones retired", 2*time.Minute, func() bool {
			st := n.epochs.epochState()
			return st.Current == last && st.Next == 0 && n.sets.epochReady(last) && n.sets.get("phone", last-1, reachOpen) == nil
		})
	}
	// Every committed batch is in exactly one version of the last epoch.
	committed := map[string]int{}
	if err := nodes[0].Data().Scan(nsRows, "phone/", func(key string, _ []byte) error { committed[key] = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	m, err := readManifest(nodes[0].Data(), "phone", last)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range m.Versions {
		for _, b := range v {
			committed[b]++
		}
	}
	for b, c := range committed {
		if c != 1 {
			t.Errorf("batch %s is in %d versions of epoch %d; want 1", b, c, last)
		}
	}
	for _, n := range nodes {
		ls := n.sets.get("phone", last, reachOpen)
		if ls == nil {
			t.Fatalf("%s has no set of epoch %d", n.fc.ReplicaID(), last)
		}
		missing := 0
		for _, v := range values {
			c, err := ident.Canonical(ident.Phone, v, ident.Options{Region: "GB"})
			if err != nil {
				t.Fatal(err)
			}
			ls.mu.Lock()
			in := ls.view.Contains(output(t, n, ident.Phone, c, last))
			ls.mu.Unlock()
			if !in {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d imported rows are not in the set of epoch %d", n.fc.ReplicaID(), missing, len(values), last)
		}
	}
}

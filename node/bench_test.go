package node

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// benchUsers numbers the users BenchmarkAPI adds, across its runs.
var benchUsers int

// BenchmarkAPI measures the API of one replica on loopback: a read
// (Status), a write that commits two ledger commands (AddUser: the user
// entry and the user record), and, as the baseline, one ledger Put without
// HTTP.
func BenchmarkAPI(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "gb")
	res, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	n, err := Open(ctx, Config{Dir: dir, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	deadline := time.Now().Add(30 * time.Second)
	for _, err := n.Audit().Get(nsNode, adminSeeded); err != nil; _, err = n.Audit().Get(nsNode, adminSeeded) {
		if time.Now().After(deadline) {
			b.Fatal("node not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, _ := ReadToken(res.AdminTokenFile)
	cl := &httpapi.Client{BaseURL: n.APIURL(), Token: tok}

	b.Run("Status", func(b *testing.B) {
		for b.Loop() {
			if _, err := cl.Status(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AddUser", func(b *testing.B) {
		for b.Loop() {
			benchUsers++
			if _, err := cl.AddUser(ctx, fmt.Sprintf("u%d", benchUsers), "auditor"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Baseline/LedgerPut", func(b *testing.B) {
		val := []byte("value")
		i := 0
		for b.Loop() {
			i++
			if _, err := n.Audit().Put(ctx, "bench", fmt.Sprint(i), val); err != nil {
				b.Fatal(err)
			}
		}
	})
}

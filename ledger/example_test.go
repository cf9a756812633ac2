package ledger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// A lone replica: append an entry, export the ledger and verify the export
// offline with the agency's public key.
func Example() {
	dir, _ := os.MkdirTemp("", "ledger-example-")
	defer os.RemoveAll(dir)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	ctx := context.Background()

	l, err := ledger.Open(ctx, ledger.Config{
		Dir: filepath.Join(dir, "ledger"), ReplicaID: "r1", Agency: "GB", Signer: key, Bootstrap: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := l.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeMatchOut, RequestID: "q-1", Partner: "FR", Kind: "phone",
			PaddedSize: 1024, Outcome: ledger.OutcomeOK},
		Body: ledger.Body{Actor: "officer-7", LegalBasis: "art. 12", CaseRef: "case-42"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("appended at index", r.Index)

	out := filepath.Join(dir, "export")
	if _, err := l.Export(ctx, out, "auditor-1"); err != nil {
		fmt.Println(err)
		return
	}
	vkey := l.VerifierKey()
	l.Close()

	rep, err := format.Verify(os.DirFS(out), vkey, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("verified", rep.Size, "entries of", rep.Origin)
	// Output:
	// appended at index 0
	// verified 2 entries of xborder.ledger/GB
}

package console

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/xborder/xborder/internal/console/consoletest"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

func TestVerifyEntry(t *testing.T) {
	fake, err := consoletest.NewFake(time.Now(), 20, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	pub, err := fake.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ada := httpapi.User{Name: "ada", Role: "auditor"}
	good := func(i uint64) httpapi.EntryProof {
		p, err := fake.EntryProof(ctx, ada, "test", i, 20)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, otherKey, err := note.GenerateKey(rand.Reader, format.Origin(consoletest.Agency))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    string
		index  uint64
		change func(p *httpapi.EntryProof)
		fails  string // the failed check; empty: verified
	}{
		{"first entry", fake.LedgerKey, 0, nil, ""},
		{"an entry inside", fake.LedgerKey, 13, nil, ""},
		{"last entry", fake.LedgerKey, 19, nil, ""},
		{"no key", "", 3, nil, "ledger key"},
		{"another agency key", otherKey, 3, nil, "signed by"},
		{"a proof hash changed", fake.LedgerKey, 3, func(p *httpapi.EntryProof) {
			b, _ := base64.StdEncoding.DecodeString(p.Proof[0])
			b[0] ^= 1
			p.Proof[0] = base64.StdEncoding.EncodeToString(b)
		}, "inclusion proof"},
		{"a header field changed", fake.LedgerKey, 3, func(p *httpapi.EntryProof) { p.Entry.Partner = "FR" }, "leaf"},
		{"a body field changed", fake.LedgerKey, 3, func(p *httpapi.EntryProof) { p.Entry.Body.Actor = "mallory" }, "body"},
		{"the leaf and header changed together", fake.LedgerKey, 3, func(p *httpapi.EntryProof) {
			p.Entry.HitCount++
			p.Leaf = format.EncodeLeaf(&p.Entry.Header)
		}, "inclusion proof"},
		{"another entry's proof", fake.LedgerKey, 3, func(p *httpapi.EntryProof) { *p = good(4) }, "tree"},
		{"a proof for another tree", fake.LedgerKey, 3, func(p *httpapi.EntryProof) { p.Size = 19 }, "tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good(tt.index)
			if tt.change != nil {
				tt.change(&p)
			}
			got := verifyEntry(tt.key, []byte(pub.Checkpoint), tt.index, p)
			if tt.fails == "" {
				if !got.OK {
					t.Fatalf("verifyEntry(%d) failed: %+v", tt.index, got.Checks)
				}
				return
			}
			if got.OK {
				t.Fatalf("verifyEntry(%d) with %s verified", tt.index, tt.name)
			}
			last := got.Checks[len(got.Checks)-1]
			if last.OK || !strings.Contains(last.What, tt.fails) {
				t.Fatalf("verifyEntry(%d) with %s: last check %+v; want a failed check about %q", tt.index, tt.name, last, tt.fails)
			}
		})
	}
}

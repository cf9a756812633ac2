package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// openTestLedger creates a single-replica ledger with n entries, the first
// half dated 2019 so that they can be pruned, and the agency key file. The
// caller closes the ledger.
func openTestLedger(t *testing.T, n int) (l *ledger.Ledger, keyFile string) {
	t.Helper()
	key := ed25519.NewKeyFromSeed(sha256.New().Sum([]byte("cmd ledger test"))[:32])
	pemKey, err := ledger.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(t.TempDir(), "agency.key")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC)
	l, err = ledger.Open(context.Background(), ledger.Config{
		Dir: filepath.Join(t.TempDir(), "ledger"), ReplicaID: "r1", Agency: "GB", Signer: key, Bootstrap: true,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range n {
		if i == n/2 {
			now = time.Now()
		}
		_, err := l.Append(context.Background(), ledger.Entry{
			Header: ledger.Header{Type: ledger.TypeMatchOut, RequestID: fmt.Sprintf("q%d", i), Partner: "FR", Kind: "phone", Outcome: ledger.OutcomeOK},
			Body:   ledger.Body{Actor: "officer", CaseRef: "case-1"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return l, keyFile
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// TestLedgerVerify checks exports of a real ledger offline, before and
// after a prune, against a trusted checkpoint, and after tampering.
func TestLedgerVerify(t *testing.T) {
	l, keyFile := openTestLedger(t, 8)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "export")
	if _, err := l.Export(ctx, out, "auditor"); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(out, ledger.ExportCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.WriteFile(trusted, first, 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI("ledger", "verify", out)
	if code != 0 || !strings.Contains(stdout, "from "+filepath.Join(out, "ledger.pub")) ||
		!strings.Contains(stdout, "9 bodies match") || !strings.HasSuffix(stdout, "ok\n") {
		t.Fatalf("verify = %d, %q, %q; want 0, the key from ledger.pub named, 9 bodies", code, stdout, stderr)
	}
	// With the private key file as --key (its verifier key is derived).
	if code, stdout, stderr = runCLI("ledger", "verify", out, "--key", keyFile); code != 0 || !strings.Contains(stdout, "from "+keyFile) {
		t.Fatalf("verify --key = %d, %q, %q", code, stdout, stderr)
	}

	if _, _, err := l.Prune(ctx, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "admin"); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "export2")
	if _, err := l.Export(ctx, out2, "auditor"); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI("ledger", "verify", out2, "--trusted", trusted)
	if code != 0 || !strings.Contains(stdout, "4 pruned") || !strings.Contains(stdout, "consistent with the trusted checkpoint of 9 entries") {
		t.Fatalf("verify after prune = %d, %q, %q; want 0, 4 pruned, consistent with 9", code, stdout, stderr)
	}

	// Tamper with entry 5 of the export: exit 5 naming index 5.
	path := filepath.Join(out2, ledger.ExportEntries)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[5] = strings.Replace(lines[5], `"partner":"FR"`, `"partner":"DE"`, 1)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("ledger", "verify", out2)
	if code != exitVerify || !strings.Contains(stderr, "entry 5:") || !strings.Contains(stderr, "xborder: hint: entry 5") {
		t.Errorf("verify of a tampered export = %d, %q; want 5 naming entry 5", code, stderr)
	}
}

// served returns entry i of l with its proof as the node's API serves it,
// through JSON as on the wire.
func served(t *testing.T, l *ledger.Ledger, i uint64) httpapi.EntryProof {
	t.Helper()
	p, err := l.Entry(i, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := httpapi.EntryProof{Entry: p.Entry, Leaf: p.Leaf, Size: p.Size, Root: base64.StdEncoding.EncodeToString(p.Root[:])}
	for _, h := range p.Proof {
		out.Proof = append(out.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var wire httpapi.EntryProof
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	return wire
}

// TestCheckEntryProof checks what 'ledger show' checks before printing:
// every served entry of a real ledger passes, pruned ones too, and each
// kind of lie is caught.
func TestCheckEntryProof(t *testing.T) {
	l, _ := openTestLedger(t, 6)
	if _, _, err := l.Prune(context.Background(), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "admin"); err != nil {
		t.Fatal(err)
	}
	for i := range uint64(7) {
		p := served(t, l, i)
		root, err := checkEntryProof(i, p)
		if err != nil {
			t.Fatalf("checkEntryProof(%d) = %v; want nil", i, err)
		}
		if got := base64.StdEncoding.EncodeToString(root[:]); got != p.Root {
			t.Errorf("checkEntryProof(%d) root = %s; want %s", i, got, p.Root)
		}
		if i < 3 && !p.Entry.Pruned {
			t.Errorf("entry %d is not pruned; the test wants pruned entries checked too", i)
		}
	}

	other := served(t, l, 2)
	tests := []struct {
		name   string
		index  uint64
		change func(p *httpapi.EntryProof)
		want   string
	}{
		{"another entry", 4, func(p *httpapi.EntryProof) { *p = served(t, l, 3) }, "sent entry 3"},
		{"header changed", 4, func(p *httpapi.EntryProof) { p.Entry.Partner = "DE" }, "header does not match the leaf"},
		{"header and leaf changed", 4, func(p *httpapi.EntryProof) {
			p.Entry.Partner = "DE"
			p.Leaf = ledger.EncodeLeaf(&p.Entry.Header)
		}, "inclusion proof does not lead"},
		{"body changed", 4, func(p *httpapi.EntryProof) { p.Entry.Body.CaseRef = "case-2" }, "body does not match"},
		{"root changed", 4, func(p *httpapi.EntryProof) { p.Root = other.Root[:4] + "AAAA" + other.Root[8:] }, "inclusion proof does not lead"},
		{"root not base64", 4, func(p *httpapi.EntryProof) { p.Root = "!" }, "not a base64"},
		{"proof hash dropped", 4, func(p *httpapi.EntryProof) { p.Proof = p.Proof[1:] }, "inclusion proof does not lead"},
		{"proof hash short", 4, func(p *httpapi.EntryProof) { p.Proof[0] = "AAAA" }, "proof hash 0"},
		{"size shrunk", 4, func(p *httpapi.EntryProof) { p.Size = 4 }, "not in a tree of 4"},
		{"size grown", 6, func(p *httpapi.EntryProof) { p.Size++ }, "inclusion proof does not lead"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := served(t, l, tc.index)
			tc.change(&p)
			_, err := checkEntryProof(tc.index, p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkEntryProof(%d) = %v; want an error mentioning %q", tc.index, err, tc.want)
			}
		})
	}
}

func TestLedgerUsage(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("xbt_test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: the node is unavailable.
	api := []string{"--api", "http://127.0.0.1:1", "--token-file", tok}
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"ledger"}, exitUsage, "give a subcommand"},
		{[]string{"ledger", "verify"}, exitUsage, "give one export directory"},
		{[]string{"ledger", "verify", t.TempDir()}, exitInvalid, "checkpoint"},
		{[]string{"ledger", "export"}, exitUsage, "no --out"},
		{[]string{"ledger", "export", "--out", "x"}, exitUsage, "no node to talk to"},
		{[]string{"ledger", "show"}, exitUsage, "give one entry index"},
		{[]string{"ledger", "show", "x"}, exitUsage, "not a number"},
		{[]string{"ledger", "list", "--type", "match"}, exitUsage, "--type"},
		{[]string{"ledger", "list", "--since", "yesterday"}, exitUsage, "--since"},
		{[]string{"ledger", "list", "--until", "-1h"}, exitUsage, "--until"},
		{[]string{"ledger", "list", "--limit", "-1"}, exitUsage, "--limit"},
		{[]string{"ledger", "prune"}, exitUsage, "no --before"},
		{[]string{"ledger", "prune", "--before", "yesterday"}, exitUsage, "--before"},
		{[]string{"ledger", "list", "--dir", t.TempDir()}, exitUnavailable, "find the node's API"},
		{append([]string{"ledger", "list"}, api...), exitUnavailable, "ledger/entries"},
		{append([]string{"ledger", "show", "3"}, api...), exitUnavailable, "ledger/entries/3"},
		{append([]string{"ledger", "export", "--out", "x"}, api...), exitUnavailable, "ledger/export"},
		{append([]string{"ledger", "prune", "--before", "2020-01-01"}, api...), exitUnavailable, "ledger/prune"},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("xborder %s = %d, %q; want %d mentioning %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.err)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Now()
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2026-03-01", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-03-01T10:00:00+01:00", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)},
		{"48h", now.Add(-48 * time.Hour)},
	}
	for _, tc := range tests {
		got, err := parseWhen(tc.in)
		if err != nil {
			t.Errorf("parseWhen(%q) = %v", tc.in, err)
			continue
		}
		if d := got.Sub(tc.want); d < -time.Minute || d > time.Minute {
			t.Errorf("parseWhen(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "-2h", "2026-13-01"} {
		if _, err := parseWhen(bad); err == nil {
			t.Errorf("parseWhen(%q) = nil error; want one", bad)
		}
	}
}

// proofsOf builds the answers a node would serve for a tree of n entries,
// with tlog alone (no ledger to open in every fuzz worker).
func proofsOf(tb testing.TB, n int) []httpapi.EntryProof {
	tb.Helper()
	var hashes []tlog.Hash
	var entries []ledger.Entry
	for i := range n {
		en := ledger.Entry{Header: ledger.Header{Version: 1, Index: uint64(i), Time: time.Unix(1_700_000_000+int64(i), 5).UTC(),
			Type: ledger.TypeMatchOut, Agency: "GB", Partner: "FR", Kind: "phone"}, Body: ledger.Body{Actor: "user:alice"}}
		en.Salt[0] = byte(i + 1)
		en.BodyHash = ledger.BodyHash(en.Salt, en.Body)
		hs, err := tlog.StoredHashes(int64(i), ledger.EncodeLeaf(&en.Header), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for j, x := range idx {
				out[j] = hashes[x]
			}
			return out, nil
		}))
		if err != nil {
			tb.Fatal(err)
		}
		hashes = append(hashes, hs...)
		entries = append(entries, en)
	}
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = hashes[x]
		}
		return out, nil
	})
	root, err := tlog.TreeHash(int64(n), hr)
	if err != nil {
		tb.Fatal(err)
	}
	var out []httpapi.EntryProof
	for i, en := range entries {
		proof, err := tlog.ProveRecord(int64(n), int64(i), hr)
		if err != nil {
			tb.Fatal(err)
		}
		p := httpapi.EntryProof{Entry: en, Leaf: ledger.EncodeLeaf(&en.Header), Size: uint64(n), Root: base64.StdEncoding.EncodeToString(root[:])}
		for _, h := range proof {
			p.Proof = append(p.Proof, base64.StdEncoding.EncodeToString(h[:]))
		}
		out = append(out, p)
	}
	return out
}

// FuzzCheckEntryProof feeds 'ledger show' hostile answers of the node: it
// never panics, and what it accepts has a leaf that encodes its header and
// a proof that leads to the root it names.
func FuzzCheckEntryProof(f *testing.F) {
	for i, p := range proofsOf(f, 5) {
		if _, err := checkEntryProof(uint64(i), p); err != nil {
			f.Fatalf("checkEntryProof(%d) of a well-formed answer = %v", i, err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint64(i), b)
	}
	f.Add(uint64(1<<63), []byte(`{"entry":{"index":9223372036854775808},"size":18446744073709551615,"root":"","proof":[]}`))
	f.Fuzz(func(t *testing.T, index uint64, data []byte) {
		var p httpapi.EntryProof
		if json.Unmarshal(data, &p) != nil {
			return
		}
		root, err := checkEntryProof(index, p)
		if err != nil {
			return
		}
		if !bytes.Equal(ledger.EncodeLeaf(&p.Entry.Header), p.Leaf) {
			t.Fatalf("checkEntryProof(%d) accepted a leaf that does not encode the header", index)
		}
		if base64.StdEncoding.EncodeToString(root[:]) != p.Root {
			t.Fatalf("checkEntryProof(%d) = root %x; the answer named %s", index, root, p.Root)
		}
	})
}

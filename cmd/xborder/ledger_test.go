package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/ledger"
)

// writeLedger creates a stopped single-replica ledger with n entries, the
// first half dated 2019 so that they can be pruned, and the agency key file.
func writeLedger(t *testing.T, n int) (dir, keyFile string) {
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
	dir = filepath.Join(t.TempDir(), "ledger")
	now := time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC)
	l, err := ledger.Open(context.Background(), ledger.Config{
		Dir: dir, ReplicaID: "r1", Agency: "GB", Signer: key, Bootstrap: true,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
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
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, keyFile
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func TestLedgerExportVerifyPrune(t *testing.T) {
	dir, keyFile := writeLedger(t, 8)
	out := filepath.Join(t.TempDir(), "export")

	code, stdout, stderr := runCLI("ledger", "export", "--dir", dir, "--key", keyFile, "--out", out, "--actor", "auditor")
	if code != 0 || !strings.Contains(stdout, "exported 9 entries of xborder.ledger/GB") {
		t.Fatalf("export = %d, %q, %q; want 0 and 9 entries (8 + the export entry)", code, stdout, stderr)
	}
	first, err := os.ReadFile(filepath.Join(out, ledger.ExportCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(t.TempDir(), "checkpoint")
	os.WriteFile(trusted, first, 0o600)

	code, stdout, stderr = runCLI("ledger", "verify", out)
	if code != 0 || !strings.Contains(stdout, "from "+filepath.Join(out, "ledger.pub")) ||
		!strings.Contains(stdout, "9 bodies match") || !strings.HasSuffix(stdout, "ok\n") {
		t.Fatalf("verify = %d, %q, %q; want 0, the key from ledger.pub named, 9 bodies", code, stdout, stderr)
	}
	// With the private key file as --key (its verifier key is derived).
	if code, stdout, stderr = runCLI("ledger", "verify", out, "--key", keyFile); code != 0 || !strings.Contains(stdout, "from "+keyFile) {
		t.Fatalf("verify --key = %d, %q, %q", code, stdout, stderr)
	}

	// Prune: a date inside the five-year retention is refused (exit 1).
	code, _, stderr = runCLI("ledger", "prune", "--dir", dir, "--key", keyFile, "--before", time.Now().Format("2006-01-02"))
	if code != exitInvalid || !strings.Contains(stderr, "retention") {
		t.Errorf("prune inside the retention = %d, %q; want 1 naming the retention", code, stderr)
	}
	code, stdout, stderr = runCLI("ledger", "prune", "--dir", dir, "--key", keyFile, "--before", "2020-01-01")
	if code != 0 || !regexp.MustCompile(`pruned \d+ bodies`).MatchString(stdout) {
		t.Fatalf("prune = %d, %q, %q", code, stdout, stderr)
	}
	out2 := filepath.Join(t.TempDir(), "export2")
	if code, _, stderr = runCLI("ledger", "export", "--dir", dir, "--key", keyFile, "--out", out2); code != 0 {
		t.Fatalf("second export = %d, %q", code, stderr)
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
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600)
	code, _, stderr = runCLI("ledger", "verify", out2)
	if code != exitVerify || !strings.Contains(stderr, "entry 5:") || !strings.Contains(stderr, "xborder: hint: entry 5") {
		t.Errorf("verify of a tampered export = %d, %q; want 5 naming entry 5", code, stderr)
	}
}

func TestLedgerUsage(t *testing.T) {
	dir, keyFile := writeLedger(t, 1)
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"ledger"}, exitUsage, "give a subcommand"},
		{[]string{"ledger", "verify"}, exitUsage, "give one export directory"},
		{[]string{"ledger", "export", "--dir", dir, "--key", keyFile}, exitUsage, "no --out"},
		{[]string{"ledger", "export", "--key", keyFile, "--out", "x"}, exitUsage, "no --dir"},
		{[]string{"ledger", "prune", "--dir", dir, "--key", keyFile, "--before", "yesterday"}, exitUsage, "--before"},
		{[]string{"ledger", "export", "--dir", t.TempDir(), "--key", keyFile, "--out", "x"}, exitInvalid, "not a ledger directory"},
		{[]string{"ledger", "export", "--dir", dir, "--key", dir, "--out", "x"}, exitInvalid, "agency key"},
		{[]string{"ledger", "verify", t.TempDir()}, exitInvalid, "checkpoint"},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("xborder %s = %d, %q; want %d mentioning %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.err)
		}
	}
}

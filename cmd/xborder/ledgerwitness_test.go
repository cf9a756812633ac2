package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// witnessedExport copies the cosigned export of ledger/format/testdata
// (written by node's TestWitnessing) and returns its directory and the
// two witness keys.
func witnessedExport(t *testing.T) (string, []string) {
	t.Helper()
	src := filepath.Join("..", "..", "ledger", "format", "testdata", "witnessed")
	dir := t.TempDir()
	for _, name := range []string{"checkpoint", "entries.jsonl", "ledger.pub"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := os.ReadFile(filepath.Join(src, "witnesses"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, strings.Fields(string(w))
}

// otherWitnessKey is a cosignature/v1 key named like a real witness but
// not the one its card carries.
func otherWitnessKey(name string) string {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	key := append([]byte{4}, pub...)
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	return fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(key))
}

func TestLedgerVerifyQuorum(t *testing.T) {
	dir, ws := witnessedExport(t)
	if len(ws) != 2 {
		t.Fatalf("%d witness keys in testdata; want 2", len(ws))
	}
	keyFile := filepath.Join(t.TempDir(), "w1.pub")
	if err := os.WriteFile(keyFile, []byte(ws[0]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("ledger", "verify", dir, "--witness", keyFile, "--witness", ws[1], "--quorum", "2")
	if code != 0 || !strings.Contains(stdout, "witnesses: 2 of 2 cosigned") {
		t.Fatalf("verify --quorum 2 = %d, %q, %q; want 0 and 2 of 2", code, stdout, stderr)
	}
	// FR's name with a key that is not its card's: its cosignature line
	// is not FR's, so only one of the two counts.
	name, _, _ := strings.Cut(ws[1], "+")
	code, _, stderr = runCLI("ledger", "verify", dir, "--witness", ws[0], "--witness", otherWitnessKey(name), "--quorum", "2")
	if code != exitVerify || !strings.Contains(stderr, "1 valid cosignatures of the 2 witnesses") {
		t.Fatalf("verify with a key not the card's = %d, %q; want 5", code, stderr)
	}
	// A cosignature altered in the export.
	cp, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(cp, []byte(" ")) + 10
	cp[i] ^= 1
	if err := os.WriteFile(filepath.Join(dir, "checkpoint"), cp, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("ledger", "verify", dir, "--witness", ws[0], "--witness", ws[1], "--quorum", "1")
	if code != exitVerify {
		t.Fatalf("verify of an altered cosignature = %d, %q; want 5", code, stderr)
	}
	code, _, stderr = runCLI("ledger", "verify", dir, "--witness", ws[0], "--quorum", "2")
	if code != exitUsage || !strings.Contains(stderr, "--quorum 2 with 1 witness keys") {
		t.Fatalf("verify --quorum above the keys = %d, %q; want usage", code, stderr)
	}
	code, _, stderr = runCLI("ledger", "verify", dir, "--witness", "not-a-key", "--quorum", "1")
	if code != exitInvalid {
		t.Fatalf("verify --witness not-a-key = %d, %q; want invalid", code, stderr)
	}
}

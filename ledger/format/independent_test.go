package format_test

// This test imports nothing of xborder: it checks the cosignatures of an
// export that xborder wrote (testdata/witnessed, from node's TestWitnessing
// with -update-witnessed) with golang.org/x/mod/sumdb/note and
// transparency-dev's cosignature/v1 verifier alone, the way an auditor
// with other tools would, and recomputes the checkpoint's root from the
// exported leaves with x/mod's tlog.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "witnessed", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCosignaturesVerifyIndependently(t *testing.T) {
	signed := readTestdata(t, "checkpoint")
	logV, err := note.NewVerifier(strings.TrimSpace(string(readTestdata(t, "ledger.pub"))))
	if err != nil {
		t.Fatal(err)
	}
	vs := []note.Verifier{logV}
	for _, k := range strings.Fields(string(readTestdata(t, "witnesses"))) {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			t.Fatalf("NewVerifierForCosignatureV1(%s): %v", k, err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(signed, note.VerifierList(vs...))
	if err != nil {
		t.Fatalf("open the exported checkpoint: %v", err)
	}
	cosigners := map[string]bool{}
	for _, s := range n.Sigs {
		if s.Name == logV.Name() {
			continue
		}
		ts, err := fnote.CoSigV1Timestamp(s)
		if err != nil || ts.Unix() <= 0 {
			t.Errorf("cosignature of %s: timestamp %v, %v", s.Name, ts, err)
		}
		cosigners[s.Name] = true
	}
	if len(cosigners) < 2 || len(n.UnverifiedSigs) != 0 {
		t.Fatalf("cosigners %v, unverified %d; want at least 2 and none unverified", cosigners, len(n.UnverifiedSigs))
	}

	// The checkpoint names the tree of the exported leaves.
	lines := strings.SplitN(n.Text, "\n", 4)
	var hashes []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	sc := bufio.NewScanner(bytes.NewReader(readTestdata(t, "entries.jsonl")))
	sc.Buffer(nil, 1<<20)
	var size int64
	for sc.Scan() {
		var line struct {
			Leaf []byte `json:"leaf"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(size, line.Leaf, reader)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
		size++
	}
	root, err := tlog.TreeHash(size, reader)
	if err != nil {
		t.Fatal(err)
	}
	want := lines[1] + "\n" + lines[2]
	if got := strings.TrimSpace(strings.Join([]string{itoa(size), root.String()}, "\n")); got != want {
		t.Fatalf("the leaves make %q; the checkpoint says %q", got, want)
	}

	// A cosignature altered by one bit fails the whole note.
	i := bytes.LastIndex(signed, []byte(" ")) + 10
	bad := append([]byte(nil), signed...)
	bad[i] ^= 1
	if bad[i] == '\n' || bad[i] > 'z' {
		bad[i] = 'A'
	}
	if _, err := note.Open(bad, note.VerifierList(vs...)); err == nil {
		t.Fatal("a tampered cosignature verified")
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

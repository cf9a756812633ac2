package format

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testLines returns the export lines of n entries, whose request IDs start
// with prefix; the bodies of the first pruned entries are absent.
func testLines(t testing.TB, prefix string, n, pruned int) []ExportLine {
	t.Helper()
	lines := make([]ExportLine, n)
	for i := range lines {
		h := Header{Version: EntryVersion, Index: uint64(i), Time: time.Unix(1_700_000_000+int64(i), int64(i)).UTC(),
			Type: TypeMatchOut, RequestID: fmt.Sprintf("%s-%d", prefix, i), Agency: "GB", Partner: "FR",
			Kind: "phone", PaddedSize: 1024, Outcome: OutcomeOK, Replica: "r1"}
		salt := Digest{byte(i), 1}
		body := Body{Actor: "officer-7", LegalBasis: "art. 12", CaseRef: fmt.Sprintf("case-%d", i)}
		h.BodyHash = BodyHash(salt, body)
		lines[i] = ExportLine{Index: uint64(i), Leaf: EncodeLeaf(&h), Header: h}
		if i >= pruned {
			lines[i].Body, lines[i].Salt = &body, &salt
		}
	}
	return lines
}

// testKey returns the signer key made from seed and its verifier key, for
// the origin of agency GB.
func testKey(t testing.TB, seed string) (skey, vkey string) {
	t.Helper()
	sum := sha256.Sum256([]byte(seed))
	skey, vkey, err := note.GenerateKey(bytes.NewReader(sum[:]), Origin("GB"))
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// sign returns the checkpoint note of the tree of lines, signed with skey.
func sign(t testing.TB, skey string, lines []ExportLine) []byte {
	t.Helper()
	var hs hashStore
	for i, l := range lines {
		h, err := tlog.StoredHashes(int64(i), l.Leaf, hs)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h...)
	}
	root, err := tlog.TreeHash(int64(len(lines)), hs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	text := log.Checkpoint{Origin: Origin("GB"), Size: uint64(len(lines)), Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// exportFS lays out an export directory in memory.
func exportFS(t testing.TB, checkpoint []byte, vkey string, lines []ExportLine) fstest.MapFS {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			t.Fatal(err)
		}
	}
	return fstest.MapFS{
		ExportCheckpoint: {Data: checkpoint},
		ExportPublicKey:  {Data: []byte(vkey + "\n")},
		ExportEntries:    {Data: buf.Bytes()},
	}
}

// readLinesFS decodes the entries of an export in memory.
func readLinesFS(t testing.TB, fsys fstest.MapFS) []ExportLine {
	t.Helper()
	var out []ExportLine
	sc := bufio.NewScanner(bytes.NewReader(fsys[ExportEntries].Data))
	for sc.Scan() {
		var l ExportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// TestVerify: an untouched export verifies, pruned bodies included, and a
// trusted earlier checkpoint of the same history is proven consistent.
func TestVerify(t *testing.T) {
	skey, vkey := testKey(t, "agency")
	lines := testLines(t, "q", 16, 3)
	early := sign(t, skey, lines[:5])
	fsys := exportFS(t, sign(t, skey, lines), vkey, lines)
	rep, err := Verify(fsys, vkey, early)
	if err != nil {
		t.Fatalf("Verify of an untouched export: %v", err)
	}
	cp, err := ParseCheckpoint(fsys[ExportCheckpoint].Data, vkey)
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Origin: Origin("GB"), Size: 16, Root: cp.Root, Bodies: 13, Pruned: 3, TrustedSize: 5}
	if !reflect.DeepEqual(*rep, want) {
		t.Errorf("Verify report = %+v; want %+v", *rep, want)
	}
	empty := exportFS(t, sign(t, skey, nil), vkey, nil)
	if rep, err := Verify(empty, vkey, nil); err != nil || rep.Size != 0 {
		t.Errorf("Verify of an empty export = %+v, %v; want 0 entries", rep, err)
	}
}

// TestVerifyCatchesTampering: each kind of change to an export fails with
// a VerifyError naming the first bad index.
func TestVerifyCatchesTampering(t *testing.T) {
	skey, vkey := testKey(t, "agency")
	lines := testLines(t, "q", 16, 0)
	good := exportFS(t, sign(t, skey, lines), vkey, lines)

	tests := []struct {
		name   string
		change func([]ExportLine) []ExportLine
		index  int64
	}{
		{"leaf removed", func(ls []ExportLine) []ExportLine { return append(ls[:7:7], ls[8:]...) }, 7},
		{"leaf byte altered", func(ls []ExportLine) []ExportLine { ls[4].Leaf[20] ^= 1; return ls }, 4},
		{"header altered", func(ls []ExportLine) []ExportLine { ls[9].Header.Partner = "DE"; return ls }, 9},
		{"body altered", func(ls []ExportLine) []ExportLine { ls[2].Body.Actor = "someone else"; return ls }, 2},
		{"salt dropped", func(ls []ExportLine) []ExportLine { ls[6].Salt = nil; return ls }, 6},
		{"last entry removed", func(ls []ExportLine) []ExportLine { return ls[:len(ls)-1] }, 15},
		{"leaf and header altered together", func(ls []ExportLine) []ExportLine {
			ls[3].Header.Partner = "DE"
			ls[3].Leaf = EncodeLeaf(&ls[3].Header)
			return ls
		}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := exportFS(t, good[ExportCheckpoint].Data, vkey, tc.change(readLinesFS(t, good)))
			_, err := Verify(fsys, vkey, nil)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrVerify) || ve.Index != tc.index {
				t.Fatalf("Verify = %v; want a VerifyError at index %d", err, tc.index)
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		_, other := testKey(t, "another agency")
		if _, err := Verify(good, other, nil); !errors.Is(err, ErrVerify) {
			t.Errorf("Verify with another agency's key = %v; want ErrVerify", err)
		}
	})
	t.Run("trusted checkpoint from a forked history", func(t *testing.T) {
		fork := sign(t, skey, testLines(t, "fork", 5, 0))
		if _, err := Verify(good, vkey, fork); !errors.Is(err, ErrVerify) {
			t.Errorf("Verify against a checkpoint of another history = %v; want ErrVerify", err)
		}
	})
	t.Run("trusted checkpoint larger than the export", func(t *testing.T) {
		more := sign(t, skey, testLines(t, "q", 17, 0))
		if _, err := Verify(good, vkey, more); !errors.Is(err, ErrVerify) {
			t.Errorf("Verify against a checkpoint of 17 entries = %v; want ErrVerify", err)
		}
	})
	t.Run("entries missing", func(t *testing.T) {
		fsys := fstest.MapFS{ExportCheckpoint: good[ExportCheckpoint]}
		_, err := Verify(fsys, vkey, nil)
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrVerify) {
			t.Errorf("Verify without entries.jsonl = %v; want fs.ErrNotExist, not ErrVerify", err)
		}
	})
}

package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// cosigner returns transparency-dev's cosignature/v1 signer of a witness
// key named name, and its verifier key.
func cosigner(t testing.TB, name string, seed byte) (note.Signer, string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	key := append([]byte{algCosignatureV1}, priv.Public().(ed25519.PublicKey)...)
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	hash := fmt.Sprintf("%08x", binary.BigEndian.Uint32(h[:4]))
	s, err := fnote.NewSignerForCosignatureV1("PRIVATE+KEY+" + name + "+" + hash + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, priv.Seed()...)))
	if err != nil {
		t.Fatal(err)
	}
	return s, name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(key)
}

// cosign adds the signature lines of signers to a signed note.
func cosign(t testing.TB, signed []byte, signers ...note.Signer) []byte {
	t.Helper()
	text := signed[:bytes.Index(signed, []byte("\n\n"))+1]
	out := append([]byte(nil), signed...)
	for _, s := range signers {
		b, err := note.Sign(&note.Note{Text: string(text)}, s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b[len(text)+1:]...)
	}
	return out
}

func TestVerifyQuorum(t *testing.T) {
	skey, vkey := testKey(t, "gb")
	lines := testLines(t, "q", 5, 1)
	fsys := exportFS(t, sign(t, skey, lines), vkey, lines)
	fr, frKey := cosigner(t, "xborder.witness/FR", 1)
	de, deKey := cosigner(t, "xborder.witness/DE", 2)
	_, otherKey := cosigner(t, "xborder.witness/FR", 3) // FR's name, not FR's card's key
	fsys[ExportCheckpoint] = &fstest.MapFile{Data: cosign(t, fsys[ExportCheckpoint].Data, fr, de)}
	if rep, err := VerifyQuorum(fsys, vkey, nil, []string{frKey, deKey}, 2); err != nil || len(rep.Cosigners) != 2 {
		t.Fatalf("VerifyQuorum(2 of 2) = %+v, %v", rep, err)
	}
	if _, err := VerifyQuorum(fsys, vkey, nil, []string{otherKey, deKey}, 2); !errors.Is(err, ErrVerify) ||
		!strings.Contains(err.Error(), "1 valid cosignatures") {
		t.Fatalf("VerifyQuorum with a key that is not the card's = %v; want ErrVerify, 1 valid", err)
	}
	if rep, err := VerifyQuorum(fsys, vkey, nil, nil, 0); err != nil || rep.Cosigners != nil {
		t.Fatalf("VerifyQuorum(0) = %+v, %v; want plain Verify", rep, err)
	}
	// One bit of FR's cosignature flipped: the note is refused.
	cp := fsys[ExportCheckpoint].Data
	i := bytes.Index(cp, []byte("— xborder.witness/FR ")) + len("— xborder.witness/FR ") + 12
	bad := append([]byte(nil), cp...)
	bad[i] ^= 1
	fsys[ExportCheckpoint] = &fstest.MapFile{Data: bad}
	if _, err := VerifyQuorum(fsys, vkey, nil, []string{frKey, deKey}, 1); !errors.Is(err, ErrVerify) {
		t.Fatalf("VerifyQuorum of an altered cosignature = %v; want ErrVerify", err)
	}
}

// FuzzCosigners: Cosigners never panics on a checkpoint file, and names
// only witnesses it was given, each once.
func FuzzCosigners(f *testing.F) {
	skey, vkey := testKey(f, "gb")
	fr, frKey := cosigner(f, "xborder.witness/FR", 1)
	signed := sign(f, skey, testLines(f, "q", 3, 0))
	f.Add(signed)
	f.Add(cosign(f, signed, fr))
	f.Add(cosign(f, signed, fr, fr))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := Cosigners(b, vkey, []string{frKey})
		if err != nil {
			return
		}
		if len(names) > 1 || (len(names) == 1 && names[0] != "xborder.witness/FR") {
			t.Fatalf("Cosigners = %v", names)
		}
	})
}

// FuzzCosignatureVerifier: a verifier key either parses into a verifier of
// its own name and hash, or is refused; never a panic.
func FuzzCosignatureVerifier(f *testing.F) {
	_, k := cosigner(f, "xborder.witness/FR", 1)
	f.Add(k)
	f.Add("xborder.witness/FR+00000000+BA==")
	f.Add("")
	f.Fuzz(func(t *testing.T, k string) {
		v, err := CosignatureVerifier(k)
		if err != nil {
			return
		}
		if name, _, _ := strings.Cut(k, "+"); v.Name() != name {
			t.Fatalf("name %q from %q", v.Name(), k)
		}
	})
}

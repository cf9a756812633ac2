package format

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Witness cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1).
// A partner's witness cosigns a checkpoint by adding a signature line to its
// note: key hash SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[:4], then an 8-byte
// big-endian Unix time and an Ed25519 signature over
//
//	"cosignature/v1\ntime <T>\n" ‖ checkpoint text
//
// This verifier is written here, on the standard library and x/mod alone,
// so that an auditor's verifier needs nothing else (transparency-dev's
// formats/note implements the same and checks the same signatures).

const algCosignatureV1 = 0x04

// cosigVerifier is a note.Verifier of Ed25519 cosignature/v1.
type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t >= 1<<63 {
		return false
	}
	m := append([]byte("cosignature/v1\ntime "+strconv.FormatUint(t, 10)+"\n"), msg...)
	return ed25519.Verify(v.key, m, sig[8:])
}

// CosignatureVerifier returns the verifier of a witness's cosignature/v1
// verifier key, name+hash+base64(0x04 ‖ 32-byte Ed25519 key).
func CosignatureVerifier(vkey string) (note.Verifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if !ok1 || !ok2 || name == "" || len(hash16) != 8 || err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != algCosignatureV1 {
		return nil, fmt.Errorf("witness key %q: want name+hash+base64 of an Ed25519 cosignature/v1 key", vkey)
	}
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	hash := binary.BigEndian.Uint32(h[:4])
	if want, err := strconv.ParseUint(hash16, 16, 32); err != nil || uint32(want) != hash {
		return nil, fmt.Errorf("witness key %q: key hash does not match the key", vkey)
	}
	return &cosigVerifier{name: name, hash: hash, key: ed25519.PublicKey(key[1:])}, nil
}

// Cosigners opens a checkpoint note with the log's verifier key and
// returns the names of the witnesses among witnesses (cosignature/v1
// verifier keys) whose cosignature on it verifies. A line that names a
// given witness but does not verify fails the whole note (signed-note
// rules): the checkpoint was tampered with.
func Cosigners(signed []byte, logKey string, witnesses []string) ([]string, error) {
	lv, err := note.NewVerifier(logKey)
	if err != nil {
		return nil, fmt.Errorf("cosignatures: log key: %w", err)
	}
	vs := []note.Verifier{lv}
	for _, w := range witnesses {
		v, err := CosignatureVerifier(w)
		if err != nil {
			return nil, fmt.Errorf("cosignatures: %w", err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(signed, note.VerifierList(vs...))
	if err != nil {
		return nil, fmt.Errorf("cosignatures: %w", err)
	}
	var out []string
	seen := map[string]bool{}
	logSigned := false
	for _, s := range n.Sigs {
		if s.Name == lv.Name() && s.Hash == lv.KeyHash() {
			logSigned = true
			continue
		}
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s.Name)
		}
	}
	if !logSigned {
		return nil, errors.New("cosignatures: the checkpoint is not signed by the log's key")
	}
	return out, nil
}

// VerifyQuorum is Verify, then requires at least quorum valid cosignatures
// on the exported checkpoint from distinct witnesses among witnesses
// (cosignature/v1 verifier keys). Too few is a *VerifyError (index -1)
// naming the witnesses that did cosign.
func VerifyQuorum(fsys fs.FS, verifierKey string, trusted []byte, witnesses []string, quorum int) (*Report, error) {
	rep, err := Verify(fsys, verifierKey, trusted)
	if err != nil {
		return nil, err
	}
	if quorum <= 0 {
		return rep, nil
	}
	signed, err := fs.ReadFile(fsys, ExportCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("verify ledger export: %w", err)
	}
	names, err := Cosigners(signed, verifierKey, witnesses)
	if err != nil {
		return nil, bad(-1, "%v", err)
	}
	rep.Cosigners = names
	if len(names) < quorum {
		got := "none"
		if len(names) > 0 {
			got = strings.Join(names, ", ")
		}
		return nil, bad(-1, "%d valid cosignatures of the %d witnesses given (%s); want %d", len(names), len(witnesses), got, quorum)
	}
	return rep, nil
}

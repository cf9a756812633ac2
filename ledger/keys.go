package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

// LoadKey reads an agency's Ed25519 private key from a PEM file holding a
// "PRIVATE KEY" block (PKCS #8), as `--key FILE` names it.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load agency key: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("load agency key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses a PEM "PRIVATE KEY" block (PKCS #8) holding an Ed25519 key.
func ParseKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("parse agency key: no PEM \"PRIVATE KEY\" block: %w", ErrInvalid)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse agency key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse agency key: a %T, want Ed25519: %w", k, ErrInvalid)
	}
	return ek, nil
}

// MarshalKey encodes k as a PEM "PRIVATE KEY" block (PKCS #8), the format
// LoadKey reads.
func MarshalKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal agency key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// noteSigner returns a signed-note signer for the agency key.
func noteSigner(origin string, k ed25519.PrivateKey) (note.Signer, error) {
	pub := append([]byte{1}, k.Public().(ed25519.PublicKey)...) // 1: Ed25519 in x/mod/sumdb/note
	h := sha256.Sum256(append([]byte(origin+"\n"), pub...))
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", origin, binary.BigEndian.Uint32(h[:4]),
		base64.StdEncoding.EncodeToString(append([]byte{1}, k.Seed()...)))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint signer for %s: %w", origin, err)
	}
	return s, nil
}

package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	pemKey, err := MarshalKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(pemKey)
	if err != nil || !k.Equal(testKey) {
		t.Fatalf("ParseKey(MarshalKey(k)) = %v; want k back", err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pub, _ := x509.MarshalPKIXPublicKey(testKey.Public().(ed25519.PublicKey))
	tests := []struct {
		name string
		pem  []byte
	}{
		{"rsa", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
		{"public key block", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})},
		{"not pem", []byte("hello")},
	}
	for _, tc := range tests {
		if _, err := ParseKey(tc.pem); err == nil {
			t.Errorf("ParseKey(%s) succeeded; want an error", tc.name)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseKey(%s) = %v; want ErrInvalid", tc.name, err)
		}
	}
	if _, err := LoadKey(t.TempDir() + "/missing"); err == nil {
		t.Errorf("LoadKey(missing) succeeded")
	}
}

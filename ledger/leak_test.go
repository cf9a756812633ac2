package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"
)

// TestCloseEndsGoroutines: after Close, nothing the ledger started runs.
func TestCloseEndsGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := open(t, testConfig(t.TempDir()))
	appendN(t, l, 0, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

// TestCheckpointTimer: the leader signs a checkpoint on its timer while
// entries arrive, without any call to Checkpoint.
func TestCheckpointTimer(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.CheckpointInterval = 20 * time.Millisecond
	l := open(t, cfg)
	defer l.Close()
	appendN(t, l, 0, 5)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var stored []byte
		if err := l.db.View(func(txn *badger.Txn) (err error) {
			stored, _, err = getBytes(txn, []byte(keyNote))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if stored != nil {
			cp, err := ParseCheckpoint(stored, l.VerifierKey())
			if err != nil {
				t.Fatalf("stored checkpoint: %v", err)
			}
			if cp.Size == 5 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint of 5 entries signed by the timer within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

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

// TestNoLeaderNoQuorum: a replica that is in no cluster (not bootstrapped,
// never joined) has no leader; writes fail with ErrNoQuorum within their
// bound instead of hanging.
func TestNoLeaderNoQuorum(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir())
	cfg.Bootstrap = false
	cfg.Transport = &tcpLayer{ln: ln}
	l := open(t, cfg)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := l.Append(ctx, entry(1)); !errors.Is(err, ErrNoQuorum) {
		t.Errorf("Append without a leader = %v; want ErrNoQuorum", err)
	}
	if _, err := l.Admit(ctx, admission("q", 1)); !errors.Is(err, ErrNoQuorum) {
		t.Errorf("Admit without a leader = %v; want ErrNoQuorum", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("failing took %s; want about the 300ms bound", d)
	}
	if st := l.Status(); st.Quorum || st.Leader != "" {
		t.Errorf("Status() = %+v; want no quorum, no leader", st)
	}
}

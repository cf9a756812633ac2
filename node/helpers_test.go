package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"go.uber.org/goleak"
)

// noLeaks fails the test if it leaves a goroutine behind. Call it first:
// cleanups run last-in first-out, so the check runs after every Close.
func noLeaks(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

package ledger

import (
	"errors"
	"testing"

	"github.com/xborder/xborder/ledger/format"
)

// TestExportVerifies: an export verifies with format.Verify against the
// agency's key and an earlier checkpoint of the same history, and fails
// with another agency's key or a checkpoint of another history. Tampering
// with an export is tested in package format.
func TestExportVerifies(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	appendN(t, l, 0, 5)
	early, err := l.signCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 5, 10)
	good := exportLedger(t, l)
	rep, err := verifyExport(good, l.VerifierKey(), early.Note)
	if err != nil {
		t.Fatalf("Verify of an untouched export: %v", err)
	}
	if rep.Size != 16 || rep.Bodies != 16 || rep.TrustedSize != 5 {
		t.Errorf("Verify report = %+v; want 16 entries (15 + the export), 16 bodies, trusted 5", rep)
	}

	t.Run("wrong key", func(t *testing.T) {
		other, err := VerifierKey(Origin("GB"), testKey2.Public().(ed25519PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifyExport(good, other, nil); !errors.Is(err, format.ErrVerify) {
			t.Errorf("Verify with another agency's key = %v; want ErrVerify", err)
		}
	})
	t.Run("trusted checkpoint from a forked history", func(t *testing.T) {
		fork := open(t, testConfig(t.TempDir()))
		defer fork.Close()
		appendN(t, fork, 100, 5)
		cp, err := fork.signCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifyExport(good, l.VerifierKey(), cp.Note); !errors.Is(err, format.ErrVerify) {
			t.Errorf("Verify against a checkpoint of another history = %v; want ErrVerify", err)
		}
	})
}

package ledger

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

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

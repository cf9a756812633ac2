package node

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/psi"
)

// TestSeedOfUnretiredReplica: a replica killed after the rotation's end
// was committed but before it retired its old seed restarts with the
// seed file of the old epoch and no seed record in its local store, while
// the audit group already says the new epoch is current. It must ratchet
// that seed to the new epoch, not take it for the new epoch's seed: else
// every set it builds has other keys and digests than its group's (found
// by the chaos suite: one replica's digests differed in every kind).
// The same holds for a replica that joins with a bundle made before or
// after a rotation.
func TestSeedOfUnretiredReplica(t *testing.T) {
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	n := gb.nodes[0]
	seedFile := filepath.Join(gb.dirs[0], EpochSeedFile)
	s1, err := readHexSecret(seedFile, psi.SeedSize)
	if err != nil {
		t.Fatal(err)
	}
	gb.hold("phone", "GB", canon(t, "phone", "GB", fillers(50000, 5)...)...)
	if _, err := n.holdings.RotateKeys(context.Background(), httpapi.User{Name: "admin", Role: "admin"}); err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	poll(t, "epoch 2 in force and its seed retired", 3*time.Minute, func() bool {
		n.epochs.mu.Lock()
		defer n.epochs.mu.Unlock()
		return n.epochs.currentEpoch() == 2 && n.epochs.seedBase != nil && n.epochs.seedBase.Epoch == 2
	})
	want, err := n.epochs.seed(2)
	if err != nil {
		t.Fatal(err)
	}
	var seed1 psi.Seed
	copy(seed1[:], s1)
	if seed1.Next() != want {
		t.Fatalf("seed of epoch 2 is not the ratchet of epoch 1's")
	}

	// The state of a replica killed before retireLocal: epoch 1's seed
	// file, no seed record; the audit group says epoch 2 is current.
	forget := func(file []byte) {
		t.Helper()
		if err := n.localDB.Update(func(txn *badger.Txn) error { return txn.Delete([]byte("x/seed")) }); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(seedFile, []byte(hex.EncodeToString(file)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		n.epochs.mu.Lock()
		n.epochs.seedBase = nil
		n.epochs.mu.Unlock()
	}
	forget(s1)
	if got, err := n.epochs.seed(2); err != nil || got != want {
		t.Errorf("with epoch 1's seed file and epoch 2 current: seed(2) = %x…, %v; want the ratchet of epoch 1's seed", got[:4], err)
	}
	// A replica that joined from a bundle made after the rotation: epoch
	// 2's seed in the file.
	forget(want[:])
	if got, err := n.epochs.seed(2); err != nil || got != want {
		t.Errorf("with epoch 2's seed file and epoch 2 current: seed(2) = %x…, %v; want it as it is", got[:4], err)
	}
	// A seed file that is no epoch's seed of this agency is refused, never
	// used to build sets that partners cannot match.
	forget(make([]byte, psi.SeedSize))
	if _, err := n.epochs.seed(2); err == nil {
		t.Errorf("a seed file of no epoch of GB gave a seed for epoch 2")
	}
}

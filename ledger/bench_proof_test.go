package ledger

import (
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

const bigTree = 1_000_000

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
)

// buildBigTree writes a 1,000,000-entry tree straight into badger (entry
// records without bodies, and the size; no Raft), once per test binary run.
func buildBigTree() (string, error) {
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "xborder-ledger-bigtree-")
		if bigErr != nil {
			return
		}
		db, err := badger.Open(badger.DefaultOptions(bigDir).WithLogger(nil).WithValueThreshold(64 << 10))
		if err != nil {
			bigErr = err
			return
		}
		defer db.Close()
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		var hs hashStore
		e := entry(0)
		e.Version = EntryVersion
		for i := uint64(0); i < bigTree; i++ {
			e.Index = i
			e.Time = time.Unix(int64(i), 0)
			leaf := EncodeLeaf(&e.Header)
			nh, err := tlog.StoredHashes(int64(i), leaf, hs)
			if err != nil {
				bigErr = err
				return
			}
			hs = append(hs, nh...)
			if err := wb.Set(idxKey(pfxEntry, i), encodeRecord(nh, leaf, nil)); err != nil {
				bigErr = err
				return
			}
		}
		if err := wb.Set([]byte(keySize), u64(bigTree)); err != nil {
			bigErr = err
			return
		}
		bigErr = wb.Flush()
	})
	return bigDir, bigErr
}

// BenchmarkProof measures inclusion and consistency proof generation on a
// 1,000,000-entry tree read from badger, at random indexes and sizes.
func BenchmarkProof(b *testing.B) {
	dir, err := buildBigTree()
	if err != nil {
		b.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithValueThreshold(64 << 10))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	b.Run("inclusion/n=1000000", func(b *testing.B) {
		for b.Loop() {
			i := rng.Uint64N(bigTree)
			err := db.View(func(txn *badger.Txn) error {
				_, err := entryProof(txn, i, 0)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency/n=1000000", func(b *testing.B) {
		for b.Loop() {
			old := 1 + rng.Uint64N(bigTree-1)
			err := db.View(func(txn *badger.Txn) error {
				_, err := consistencyProof(txn, old, bigTree)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// hashStore is an in-memory tlog hash storage.
type hashStore []tlog.Hash

func (s hashStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = s[x]
	}
	return out, nil
}

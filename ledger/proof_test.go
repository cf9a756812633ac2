package ledger

import (
	"bytes"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// TestProofsCrossLibrary: proofs from x/mod/sumdb/tlog verify with
// transparency-dev/merkle and the other way round, for every index and
// every pair of sizes of a small tree.
func TestProofsCrossLibrary(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	appendN(t, l, 0, 21)
	h := rfc6962.DefaultHasher
	var leaves [][]byte
	roots := map[uint64][]byte{}
	for i := uint64(0); i < 21; i++ {
		p, err := l.Entry(i, 0)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, p.Leaf)
	}
	// Roots by an independent implementation (compact ranges).
	rf := &compact.RangeFactory{Hash: h.HashChildren}
	cr := rf.NewEmptyRange(0)
	for i, leaf := range leaves {
		if err := cr.Append(h.HashLeaf(leaf), nil); err != nil {
			t.Fatal(err)
		}
		root, err := cr.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		roots[uint64(i+1)] = root
	}
	err := l.db.View(func(txn *badger.Txn) error {
		hr := hashReader{txn}
		for size := uint64(1); size <= 21; size++ {
			th, err := tlog.TreeHash(int64(size), hr)
			if err != nil {
				return err
			}
			if !bytes.Equal(th[:], roots[size]) {
				t.Errorf("tree hash at %d differs between tlog and compact ranges", size)
			}
			for i := uint64(0); i < size; i++ {
				// tlog proof, merkle verification.
				rp, err := tlog.ProveRecord(int64(size), int64(i), hr)
				if err != nil {
					return err
				}
				if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(leaves[i]), hashesOf(rp), roots[size]); err != nil {
					t.Errorf("tlog inclusion proof %d/%d rejected by merkle: %v", i, size, err)
				}
				// merkle proof from our stored hashes, tlog verification.
				mp, err := merkleInclusion(hr, i, size)
				if err != nil {
					return err
				}
				var rec tlog.RecordProof
				for _, b := range mp {
					rec = append(rec, tlog.Hash(b))
				}
				if err := tlog.CheckRecord(rec, int64(size), th, int64(i), tlog.RecordHash(leaves[i])); err != nil {
					t.Errorf("merkle inclusion proof %d/%d rejected by tlog: %v", i, size, err)
				}
			}
			for old := uint64(1); old <= size; old++ {
				tp, err := tlog.ProveTree(int64(size), int64(old), hr)
				if err != nil {
					return err
				}
				if err := proof.VerifyConsistency(h, old, size, hashesOf(tp), roots[old], roots[size]); err != nil {
					t.Errorf("tlog consistency proof %d-%d rejected by merkle: %v", old, size, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And the ledger's own methods.
	cp, err := l.ConsistencyProof(5, 21)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(h, 5, 21, hashesOf(cp), roots[5], roots[21]); err != nil {
		t.Errorf("ConsistencyProof(5, 21) rejected by merkle: %v", err)
	}
}

func hashesOf[T ~[]tlog.Hash](p T) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// merkleInclusion builds an inclusion proof with transparency-dev/merkle
// from the hashes the ledger stores (complete subtrees only).
func merkleInclusion(hr tlog.HashReader, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		got, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(int(id.Level), int64(id.Index))})
		if err != nil {
			return nil, err
		}
		hs[i] = got[0][:]
	}
	return nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
}

package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// Key layout of the badger database (docs/ledger.md). Everything under
// prefixState is replicated state: written only by Apply and carried by
// snapshots. Everything under prefixLocal belongs to this replica alone.
const (
	prefixRaft   = "r/" // raft log and stable store (package raftbadger), in Dir/raft
	prefixState  = "s/"
	prefixLocal  = "x/"
	keyApplied   = "s/m/applied" // last applied raft index
	keySize      = "s/m/size"    // number of entries
	keyTime      = "s/m/time"    // latest entry time, Unix ns
	keyPolicy    = "s/m/policy"  // policy version in force
	keyPruned    = "s/m/pruned"  // first index whose body is not pruned
	pfxLeaf      = "s/l/"        // + index: leaf bytes
	pfxBody      = "s/b/"        // + index: salt || encoded body
	pfxHash      = "s/h/"        // + tlog storage index: hash
	pfxCommand   = "s/c/"        // + command ID: outcome
	pfxRequest   = "s/q/"        // + request ID: time first seen (Unix ns)
	pfxBudget    = "s/u/"        // + budget key: amount used
	pfxRecord    = "s/r/"        // + namespace + 0 + key: record value
	keyAgency    = "x/agency"
	keyReplica   = "x/replica"
	keyPublic    = "x/public"     // agency public key
	keyNote      = "x/checkpoint" // latest signed checkpoint
	keyVerified  = "x/verified"   // size (8) || root (32) checked or built by this replica
	hashKeyBytes = len(pfxHash) + 8
)

func idxKey(prefix string, i uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), i)
}

// getter reads one key; both *badger.Txn and the helpers below use it.
type getter interface {
	Get(key []byte) (*badger.Item, error)
}

// hashReader reads stored tree hashes from a transaction. Inside Apply it
// sees the hashes written earlier in the same batch.
type hashReader struct{ txn getter }

// ReadHashes implements tlog.HashReader.
func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		item, err := r.txn.Get(idxKey(pfxHash, uint64(x)))
		if err != nil {
			return nil, fmt.Errorf("read tree hash %d: %w", x, err)
		}
		if err := item.Value(func(v []byte) error {
			if len(v) != tlog.HashSize {
				return fmt.Errorf("tree hash %d has %d bytes: %w", x, len(v), ErrCorrupt)
			}
			copy(out[i][:], v)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// edge keeps the latest stored tree hash of each level in memory. Adding
// leaf n reads (tlog.StoredHashes) only the left siblings of the subtrees
// that n completes, and each is the latest completed subtree of its level,
// so with the edge the state machine never reads the tree back from
// badger. Stored hashes never change; an entry is used only when its
// storage index is the one asked for, and the edge is emptied when the
// state is replaced (fsm.load).
type edge struct {
	idx [64]int64 // storage index + 1 of the level's latest hash; 0: none
	h   [64]tlog.Hash
}

// edgeReader reads hashes from the edge, and those it lacks from txn.
type edgeReader struct {
	e   *edge
	txn getter
}

// ReadHashes implements tlog.HashReader.
func (r edgeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if level, _ := tlog.SplitStoredHashIndex(x); level < len(r.e.idx) && r.e.idx[level] == x+1 {
			out[i] = r.e.h[level]
			continue
		}
		h, err := hashReader{r.txn}.ReadHashes(indexes[i : i+1])
		if err != nil {
			return nil, err
		}
		out[i] = h[0]
	}
	return out, nil
}

// storeLeaf adds the leaf at index n to the tree in txn and to the edge e.
func storeLeaf(txn *badger.Txn, e *edge, n uint64, leaf []byte) error {
	hashes, err := tlog.StoredHashes(int64(n), leaf, edgeReader{e, txn})
	if err != nil {
		return fmt.Errorf("hash leaf %d: %w", n, err)
	}
	base := tlog.StoredHashIndex(0, int64(n))
	for i, h := range hashes {
		if err := txn.Set(idxKey(pfxHash, uint64(base)+uint64(i)), append([]byte(nil), h[:]...)); err != nil {
			return err
		}
		if i < len(e.idx) {
			e.idx[i], e.h[i] = base+int64(i)+1, h
		}
	}
	return txn.Set(idxKey(pfxLeaf, n), leaf)
}

func getUint64(txn getter, key string) (uint64, error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("%s has %d bytes: %w", key, len(b), ErrCorrupt)
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

func getBytes(txn getter, key []byte) ([]byte, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := item.ValueCopy(nil)
	return v, true, err
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

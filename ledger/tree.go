package ledger

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// An entry's record holds all that the state keeps of it, so that
// appending an entry is one write: the tree hashes that adding its leaf
// produced (tlog.StoredHashes: hashCount of them, level 0, the leaf's own
// hash, first), the leaf's length as a uvarint, the leaf, and the salt and
// encoded body, which prune removes.
type record struct {
	hashes []byte // hashCount(i) × tlog.HashSize
	leaf   []byte
	body   []byte // salt (32) || encoded body; empty once pruned
}

// hashCount is how many tree hashes adding leaf i stores: its own and one
// for each subtree it completes (each trailing 1 bit of i).
func hashCount(i uint64) int { return 1 + bits.TrailingZeros64(i+1) }

func encodeRecord(hashes []tlog.Hash, leaf, body []byte) []byte {
	b := make([]byte, 0, len(hashes)*tlog.HashSize+binary.MaxVarintLen64+len(leaf)+len(body))
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(leaf)))
	b = append(b, leaf...)
	return append(b, body...)
}

// parseRecord splits the record of entry i; its slices share v.
func parseRecord(i uint64, v []byte) (record, error) {
	n := hashCount(i) * tlog.HashSize
	if len(v) < n {
		return record{}, corrupt(i, "record of %d bytes", len(v))
	}
	r := record{hashes: v[:n]}
	l, w := binary.Uvarint(v[n:])
	if w <= 0 || l > uint64(len(v)-n-w) {
		return record{}, corrupt(i, "record's leaf length does not fit")
	}
	if w != len(binary.AppendUvarint(nil, l)) {
		return record{}, corrupt(i, "record's leaf length is not in its shortest form")
	}
	r.leaf = v[n+w : n+w+int(l)]
	r.body = v[n+w+int(l):]
	if len(r.body) > 0 && len(r.body) < 32 {
		return record{}, corrupt(i, "body of %d bytes", len(r.body))
	}
	return r, nil
}

// withoutBody is the record with its body removed (prune).
func (r record) withoutBody() []byte {
	b := make([]byte, 0, len(r.hashes)+binary.MaxVarintLen64+len(r.leaf))
	b = append(b, r.hashes...)
	b = binary.AppendUvarint(b, uint64(len(r.leaf)))
	return append(b, r.leaf...)
}

// hash returns the record's tree hash at level k.
func (r record) hash(k int) tlog.Hash {
	return tlog.Hash(r.hashes[k*tlog.HashSize : (k+1)*tlog.HashSize])
}

// readRecord reads and splits the record of entry i (ErrNotFound when
// there is none).
func readRecord(txn getter, i uint64) (record, error) {
	v, ok, err := getBytes(txn, idxKey(pfxEntry, i))
	if err != nil {
		return record{}, err
	}
	if !ok {
		return record{}, fmt.Errorf("entry %d: %w", i, ErrNotFound)
	}
	return parseRecord(i, v)
}

// hashReader reads stored tree hashes from a transaction: the hash at a
// storage index is in the record of the last leaf of its subtree. Inside
// Apply it sees the records written earlier in the same batch.
type hashReader struct{ txn getter }

// ReadHashes implements tlog.HashReader.
func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		last := (uint64(n)+1)<<level - 1
		item, err := r.txn.Get(idxKey(pfxEntry, last))
		if err != nil {
			return nil, fmt.Errorf("read tree hash %d (entry %d): %w", x, last, err)
		}
		if err := item.Value(func(v []byte) error {
			if level >= hashCount(last) || len(v) < (level+1)*tlog.HashSize {
				return corrupt(last, "record of %d bytes lacks tree hash %d", len(v), x)
			}
			copy(out[i][:], v[level*tlog.HashSize:])
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

// storeEntry adds entry n (its leaf and its salt and encoded body) to the
// tree and the state in txn, as one record, and to the edge e.
func storeEntry(txn *badger.Txn, e *edge, n uint64, leaf, body []byte) error {
	hashes, err := tlog.StoredHashes(int64(n), leaf, edgeReader{e, txn})
	if err != nil {
		return fmt.Errorf("hash leaf %d: %w", n, err)
	}
	base := tlog.StoredHashIndex(0, int64(n))
	for i, h := range hashes {
		if i < len(e.idx) {
			e.idx[i], e.h[i] = base+int64(i)+1, h
		}
	}
	return txn.Set(idxKey(pfxEntry, n), encodeRecord(hashes, leaf, body))
}

package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Key layout of the badger database (docs/ledger.md). Everything under
// prefixState is replicated state: written only by Apply and carried by
// snapshots. Everything under prefixLocal belongs to this replica alone.
const (
	prefixRaft  = "r/" // raft log and stable store (package raftbadger), in Dir/raft
	prefixState = "s/"
	prefixLocal = "x/"
	keyApplied  = "s/m/applied" // last applied raft index
	keySize     = "s/m/size"    // number of entries
	keyTime     = "s/m/time"    // latest entry time, Unix ns
	keyPolicy   = "s/m/policy"  // policy version in force
	keyPruned   = "s/m/pruned"  // first index whose body is not pruned
	pfxEntry    = "s/e/"        // + index: entry record (encodeRecord)
	pfxCommand  = "s/c/"        // + command ID: outcome
	pfxRequest  = "s/q/"        // + request ID: time first seen (Unix ns)
	pfxBudget   = "s/u/"        // + budget key: amount used
	pfxRecord   = "s/r/"        // + namespace + 0 + key: record value
	keyAgency   = "x/agency"
	keyReplica  = "x/replica"
	keyPublic   = "x/public"     // agency public key
	keyNote     = "x/checkpoint" // latest signed checkpoint
	keyVerified = "x/verified"   // size (8) || root (32) checked or built by this replica
	keyRestore  = "x/restoring"  // present while a snapshot is being restored (recover.go)
	keySnapshot = "x/snapshot"   // applied (8) || raft index (8): the state is current through that snapshot
)

// The layout before entry records (migrate.go): each entry's leaf, body
// and tree hashes under keys of their own.
const (
	pfxLeaf = "s/l/" // + index: leaf bytes
	pfxBody = "s/b/" // + index: salt || encoded body
	pfxHash = "s/h/" // + tlog storage index: hash
)

func idxKey(prefix string, i uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), i)
}

// getter reads one key; both *badger.Txn and the helpers below use it.
type getter interface {
	Get(key []byte) (*badger.Item, error)
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

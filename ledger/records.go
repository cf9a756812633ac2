package ledger

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Put stores value under (ns, key) in the replicated records: not audit
// entries, not in the tree, carried by snapshots.
func (l *Ledger) Put(ctx context.Context, ns, key string, value []byte) (Receipt, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return Receipt{}, fmt.Errorf("put record: %w", err)
	}
	c := &command{Op: opPut, NS: ns, Key: key, Value: value}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("put record: %w", err)
	}
	return o.receipt(c.ID), nil
}

// Delete removes the record (ns, key); deleting a missing record is not an error.
func (l *Ledger) Delete(ctx context.Context, ns, key string) (Receipt, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return Receipt{}, fmt.Errorf("delete record: %w", err)
	}
	c := &command{Op: opDelete, NS: ns, Key: key}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("delete record: %w", err)
	}
	return o.receipt(c.ID), nil
}

// Get returns the record (ns, key) as this replica has applied it, or
// ErrNotFound.
func (l *Ledger) Get(ns, key string) ([]byte, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return nil, fmt.Errorf("get record: %w", err)
	}
	var v []byte
	err := l.db.View(func(txn *badger.Txn) error {
		b, ok, err := getBytes(txn, recordKey(ns, key))
		if !ok && err == nil {
			return ErrNotFound
		}
		v = b
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get record %s/%s: %w", ns, key, err)
	}
	return v, nil
}

// Scan calls fn for every record of ns whose key starts with prefix, in key
// order, until fn returns an error (which Scan returns).
func (l *Ledger) Scan(ns, prefix string, fn func(key string, value []byte) error) error {
	if err := checkRecordKey(ns, prefix); err != nil {
		return fmt.Errorf("scan records: %w", err)
	}
	base := recordKey(ns, "")
	return l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordKey(ns, prefix), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("scan records: %w", err)
			}
			if err := fn(string(it.Item().Key()[len(base):]), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func recordKey(ns, key string) []byte {
	return []byte(pfxRecord + ns + "\x00" + key)
}

func checkRecordKey(ns, key string) error {
	if ns == "" || strings.IndexByte(ns, 0) >= 0 || len(ns) > MaxField || len(key) > MaxField {
		return fmt.Errorf("record namespace %q: empty, too long or holds a NUL byte: %w", ns, ErrInvalid)
	}
	return nil
}

// Swap replaces the record (ns, key) with value, only while it still holds
// the value whose SHA-256 is old (the zero Digest: only while it is
// absent). The check and the write are one command, applied in order on
// every replica, so two writers that read the same value cannot both win:
// the later one gets ErrConflict and nothing changes. Read the record again
// and decide anew.
func (l *Ledger) Swap(ctx context.Context, ns, key string, old Digest, value []byte) (Receipt, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return Receipt{}, fmt.Errorf("swap record: %w", err)
	}
	c := &command{Op: opSwap, NS: ns, Key: key, Value: value, Expect: old}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("swap record %s/%s: %w", ns, key, err)
	}
	return o.receipt(c.ID), nil
}

// SwapAppend is Swap and Append in one command: it replaces the record
// (ns, key) with value and appends e, only while the record still holds
// the value whose SHA-256 is old (the zero Digest: only while it is
// absent). On a conflict neither happens: nothing is appended and it
// returns ErrConflict. So an entry that records a change of a record
// (a partner's pin) is never appended for a change that lost to another,
// and the entries follow the record's values in order. Like every command,
// a retry with the same command ID (WithCommandID) gets the first outcome
// and appends nothing more.
func (l *Ledger) SwapAppend(ctx context.Context, ns, key string, old Digest, value []byte, e Entry) (Receipt, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return Receipt{}, fmt.Errorf("swap record and append: %w", err)
	}
	if err := l.prepare(&e); err != nil {
		return Receipt{}, fmt.Errorf("swap record and append: %w", err)
	}
	c := &command{Op: opSwap, NS: ns, Key: key, Value: value, Expect: old, Entry: &e}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("swap record %s/%s and append: %w", ns, key, err)
	}
	return o.receipt(c.ID), nil
}

// DeleteAppend is SwapAppend that deletes the record instead of writing
// it: it deletes (ns, key) and appends e, only while the record holds the
// value whose SHA-256 is old; on a conflict neither happens (ErrConflict).
func (l *Ledger) DeleteAppend(ctx context.Context, ns, key string, old Digest, e Entry) (Receipt, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return Receipt{}, fmt.Errorf("delete record and append: %w", err)
	}
	if err := l.prepare(&e); err != nil {
		return Receipt{}, fmt.Errorf("delete record and append: %w", err)
	}
	c := &command{Op: opSwap, NS: ns, Key: key, Expect: old, Remove: true, Entry: &e}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("delete record %s/%s and append: %w", ns, key, err)
	}
	return o.receipt(c.ID), nil
}

// ValueDigest is the digest Swap compares a record's value with.
func ValueDigest(value []byte) Digest { return sha256.Sum256(value) }

// swapRecord applies an opSwap command: with an entry (SwapAppend,
// DeleteAppend), the entry is appended iff the record is written (or,
// with Remove, deleted).
func (f *fsm) swapRecord(txn *badger.Txn, m *meta, c *command, o *outcome) error {
	if c.Entry != nil && c.Entry.validate() != nil {
		o.Code = "invalid"
		return nil
	}
	k := recordKey(c.NS, c.Key)
	cur, ok, err := getBytes(txn, k)
	if err != nil {
		return err
	}
	if (ok && ValueDigest(cur) != c.Expect) || (!ok && c.Expect != (Digest{})) {
		o.Code = "conflict"
		return nil
	}
	if c.Remove {
		err = txn.Delete(k)
	} else {
		err = txn.Set(k, c.Value)
	}
	if err != nil {
		return err
	}
	if c.Entry == nil {
		return nil
	}
	o.Index, err = f.appendEntry(txn, m, *c.Entry)
	o.Appended = true
	return err
}

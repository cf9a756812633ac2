// Package raftbadger implements hashicorp/raft's LogStore and StableStore on
// a badger database, beside other data under its own key prefix.
//
// Log entries live under prefix+"l"+index (8 bytes, big endian), so that key
// order is index order; stable values live under prefix+"s"+key. A log entry
// is stored in a small versioned binary layout (see encodeLog). Durability is
// the database's: open it with SyncWrites for Raft's guarantees to hold.
// Wrap the store in raft.NewLogCache to serve recent entries from memory.
//
// # Security
//
// The store keeps Raft commands as they are; whoever can read the badger
// directory reads them. Use badger's encryption at rest where that matters.
package raftbadger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// ErrKeyNotFound is returned by Get and GetUint64 for a key never set. Its
// text is "not found" because that is what hashicorp/raft tests for.
var ErrKeyNotFound = errors.New("not found")

// ErrCorruptLog is returned when a stored log entry cannot be decoded. The
// directory was damaged outside the store: restore the replica from a peer.
var ErrCorruptLog = errors.New("corrupt raft log entry")

// Store is a raft.LogStore and raft.StableStore on a badger database. It
// is safe for concurrent use. It does not own the database: closing the
// database is the caller's task.
type Store struct {
	db     *badger.DB
	logs   []byte // prefix of log keys
	stable []byte // prefix of stable keys
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// New returns a store that keeps its keys under prefix in db. Two stores
// with different prefixes (neither a prefix of the other) share a database
// without seeing each other.
func New(db *badger.DB, prefix string) *Store {
	return &Store{
		db:     db,
		logs:   append([]byte(prefix), 'l'),
		stable: append([]byte(prefix), 's'),
	}
}

func (s *Store) logKey(index uint64) []byte {
	k := make([]byte, len(s.logs)+8)
	copy(k, s.logs)
	binary.BigEndian.PutUint64(k[len(s.logs):], index)
	return k
}

// FirstIndex returns the lowest stored index, or 0 when the log is empty.
func (s *Store) FirstIndex() (uint64, error) { return s.edge(false) }

// LastIndex returns the highest stored index, or 0 when the log is empty.
func (s *Store) LastIndex() (uint64, error) { return s.edge(true) }

func (s *Store) edge(last bool) (uint64, error) {
	var idx uint64
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Reverse = last
		opts.Prefix = s.logs
		it := txn.NewIterator(opts)
		defer it.Close()
		seek := s.logs
		if last {
			seek = append(append([]byte(nil), s.logs...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		}
		it.Seek(seek)
		if it.ValidForPrefix(s.logs) {
			idx = binary.BigEndian.Uint64(it.Item().Key()[len(s.logs):])
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read raft log bounds: %w", err)
	}
	return idx, nil
}

// GetLog reads the entry at index into log, or returns raft.ErrLogNotFound.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(s.logKey(index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return raft.ErrLogNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return decodeLog(v, log) })
	})
	if errors.Is(err, raft.ErrLogNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("read raft log %d: %w", index, err)
	}
	return nil
}

// StoreLog stores one entry.
func (s *Store) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores entries in one transaction when they fit in one, else in
// as few as it takes, in order.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, l := range logs {
		k, v := s.logKey(l.Index), encodeLog(l)
		err := txn.Set(k, v)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return fmt.Errorf("store raft logs: %w", err)
			}
			txn = s.db.NewTransaction(true)
			err = txn.Set(k, v)
		}
		if err != nil {
			return fmt.Errorf("store raft log %d: %w", l.Index, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store raft logs: %w", err)
	}
	return nil
}

// DeleteRange deletes the entries from min to max, both included.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = s.logs
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(s.logKey(min)); it.ValidForPrefix(s.logs); it.Next() {
			k := it.Item().KeyCopy(nil)
			if binary.BigEndian.Uint64(k[len(s.logs):]) > max {
				break
			}
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete raft logs %d-%d: %w", min, max, err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("delete raft logs %d-%d: %w", min, max, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("delete raft logs %d-%d: %w", min, max, err)
	}
	return nil
}

// Set stores val under key.
func (s *Store) Set(key, val []byte) error {
	k := append(append([]byte(nil), s.stable...), key...)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, bytes.Clone(val)) }); err != nil {
		return fmt.Errorf("set raft stable key: %w", err)
	}
	return nil
}

// Get returns the value under key, or ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	k := append(append([]byte(nil), s.stable...), key...)
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get raft stable key: %w", err)
	}
	return val, nil
}

// SetUint64 stores val under key.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value under key, or ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("get raft stable key: %d bytes, want 8: %w", len(v), ErrCorruptLog)
	}
	return binary.BigEndian.Uint64(v), nil
}

// logVersion is the first byte of every stored entry.
const logVersion = 1

// encodeLog lays out a log entry as: version (1 byte), index, term (8 bytes
// each, big endian), type (1 byte), appended-at Unix nanoseconds (8 bytes),
// data length (4 bytes) and data, extensions length (4 bytes) and extensions.
func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+8+8+1+8+4+len(l.Data)+4+len(l.Extensions))
	b = append(b, logVersion)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	b = append(b, l.Extensions...)
	return b
}

// decodeLog is the inverse of encodeLog. It copies what it keeps.
func decodeLog(b []byte, l *raft.Log) error {
	const fixed = 1 + 8 + 8 + 1 + 8
	if len(b) < fixed+4 || b[0] != logVersion {
		return ErrCorruptLog
	}
	l.Index = binary.BigEndian.Uint64(b[1:])
	l.Term = binary.BigEndian.Uint64(b[9:])
	l.Type = raft.LogType(b[17])
	at := int64(binary.BigEndian.Uint64(b[18:]))
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := b[fixed:]
	var err error
	if l.Data, rest, err = chunk(rest); err != nil {
		return err
	}
	if l.Extensions, rest, err = chunk(rest); err != nil {
		return err
	}
	if len(rest) != 0 {
		return ErrCorruptLog
	}
	return nil
}

func chunk(b []byte) (v, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, ErrCorruptLog
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return nil, nil, ErrCorruptLog
	}
	if n == 0 {
		return nil, b, nil
	}
	return bytes.Clone(b[:n]), b[n:], nil
}

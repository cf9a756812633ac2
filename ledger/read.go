package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/ledger/format"
)

// Filter selects entries. Zero fields select everything.
type Filter struct {
	From    time.Time `json:"from,omitzero"`   // entries at or after
	To      time.Time `json:"to,omitzero"`     // entries before
	Types   []Type    `json:"types,omitempty"` // any of these types
	Partner string    `json:"partner,omitempty"`
	Case    string    `json:"case,omitempty"`  // body case reference (pruned entries never match)
	Actor   string    `json:"actor,omitempty"` // body actor (pruned entries never match)
	After   uint64    `json:"after,omitempty"` // entries with index >= After
	Limit   int       `json:"limit,omitempty"` // at most this many; 0: no limit
}

func (f *Filter) match(e *Entry) bool {
	if !f.From.IsZero() && e.Time.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !e.Time.Before(f.To) {
		return false
	}
	if len(f.Types) > 0 {
		ok := false
		for _, t := range f.Types {
			ok = ok || t == e.Type
		}
		if !ok {
			return false
		}
	}
	if f.Partner != "" && f.Partner != e.Partner {
		return false
	}
	if f.Case != "" && (e.Pruned || f.Case != e.Body.CaseRef) {
		return false
	}
	if f.Actor != "" && (e.Pruned || f.Actor != e.Body.Actor) {
		return false
	}
	return true
}

// readEntry reads entry i from txn.
func readEntry(txn *badger.Txn, i uint64) (Entry, []byte, error) {
	r, err := readRecord(txn, i)
	if errors.Is(err, ErrNotFound) {
		return Entry{}, nil, ErrNotFound
	}
	if err != nil {
		return Entry{}, nil, err
	}
	h, err := DecodeLeaf(r.leaf)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("entry %d: %w: %w", i, ErrCorrupt, err)
	}
	e := Entry{Header: h, Pruned: true}
	if len(r.body) > 0 {
		b, err := format.DecodeBody(r.body[32:])
		if err != nil {
			return Entry{}, nil, fmt.Errorf("entry %d body: %w: %w", i, ErrCorrupt, err)
		}
		e.Body, e.Salt, e.Pruned = b, Digest(r.body[:32]), false
	}
	return e, r.leaf, nil
}

// Entries returns the entries f selects, in index order, from this
// replica's state. It does not log the read: auditors' reads go through
// Read, which does.
func (l *Ledger) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	var out []Entry
	err := l.db.View(func(txn *badger.Txn) error {
		size, err := getUint64(txn, keySize)
		if err != nil {
			return err
		}
		for i := f.After; i < size; i++ {
			if i%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			e, _, err := readEntry(txn, i)
			if err != nil {
				return err
			}
			if f.match(&e) {
				out = append(out, e)
				if f.Limit > 0 && len(out) >= f.Limit {
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	return out, nil
}

// Read is the auditor's read: it first appends a ledger_read entry (actor
// in its body, the SHA-256 of the filter's JSON as its digest) and only once
// that is committed and applied on this replica returns the entries f
// selects: the read is linearizable on any replica. The ledger_read entry is
// in the result when f selects it.
func (l *Ledger) Read(ctx context.Context, actor, purpose string, f Filter) ([]Entry, Receipt, error) {
	fj, err := json.Marshal(f)
	if err != nil {
		return nil, Receipt{}, fmt.Errorf("read ledger: %w", err)
	}
	r, err := l.Append(ctx, Entry{
		Header: Header{Type: TypeLedgerRead, Outcome: OutcomeOK, Digest: sha256.Sum256(fj)},
		Body:   Body{Actor: actor, Purpose: purpose},
	})
	if err != nil {
		return nil, Receipt{}, fmt.Errorf("read ledger: %w", err)
	}
	// On a follower the append was forwarded: answer from this replica
	// only once it has applied it, so the read sees everything committed
	// before it (a linearizable read).
	wctx, cancel := context.WithDeadline(ctx, deadlineOf(ctx, l.cfg.WriteTimeout))
	defer cancel()
	if err := l.waitApplied(wctx, r.RaftIndex); err != nil {
		return nil, Receipt{}, fmt.Errorf("read ledger: %w", err)
	}
	es, err := l.Entries(ctx, f)
	return es, r, err
}

// EntryProof is one entry with its proof of inclusion in the tree of Size
// entries, whose root is Root.
type EntryProof struct {
	Entry Entry
	Leaf  []byte           // the exact leaf bytes
	Size  uint64           // tree size the proof is for
	Root  tlog.Hash        // root of that tree
	Proof tlog.RecordProof // RFC 6962 inclusion proof
}

// Entry returns entry i with its inclusion proof in the tree of the given
// size (0: the current size). It does not log the read (see Read).
func (l *Ledger) Entry(i, size uint64) (EntryProof, error) {
	var p EntryProof
	err := l.db.View(func(txn *badger.Txn) (err error) {
		p, err = entryProof(txn, i, size)
		return err
	})
	if err != nil {
		return EntryProof{}, fmt.Errorf("read entry %d: %w", i, err)
	}
	return p, nil
}

func entryProof(txn *badger.Txn, i, size uint64) (EntryProof, error) {
	var p EntryProof
	n, err := getUint64(txn, keySize)
	if err != nil {
		return p, err
	}
	if size == 0 {
		size = n
	}
	if size > n || i >= size {
		return p, fmt.Errorf("index %d in a tree of %d (%d entries): %w", i, size, n, ErrNotFound)
	}
	if p.Entry, p.Leaf, err = readEntry(txn, i); err != nil {
		return p, err
	}
	r := hashReader{txn}
	if p.Root, err = tlog.TreeHash(int64(size), r); err != nil {
		return p, err
	}
	p.Size = size
	p.Proof, err = tlog.ProveRecord(int64(size), int64(i), r)
	return p, err
}

// ConsistencyProof proves that the tree of size old is a prefix of the tree
// of size new (RFC 6962).
func (l *Ledger) ConsistencyProof(old, new uint64) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	err := l.db.View(func(txn *badger.Txn) (err error) {
		p, err = consistencyProof(txn, old, new)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prove consistency %d-%d: %w", old, new, err)
	}
	return p, nil
}

func consistencyProof(txn *badger.Txn, old, new uint64) (tlog.TreeProof, error) {
	n, err := getUint64(txn, keySize)
	if err != nil {
		return nil, err
	}
	if old > new || new > n {
		return nil, fmt.Errorf("sizes %d and %d in a tree of %d: %w", old, new, n, ErrNotFound)
	}
	return tlog.ProveTree(int64(new), int64(old), hashReader{txn})
}

// TreeHead returns the current size and root of this replica's tree.
func (l *Ledger) TreeHead() (uint64, tlog.Hash, error) {
	var n uint64
	var root tlog.Hash
	err := l.db.View(func(txn *badger.Txn) (err error) {
		n, root, err = treeHead(txn)
		return err
	})
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("read tree head: %w", err)
	}
	return n, root, nil
}

// RootAt returns the root of this replica's tree as it was at size n (at
// most the current size): what a checkpoint of size n must carry.
func (l *Ledger) RootAt(n uint64) (tlog.Hash, error) {
	var root tlog.Hash
	err := l.db.View(func(txn *badger.Txn) error {
		size, err := getUint64(txn, keySize)
		if err != nil {
			return err
		}
		if n > size {
			return fmt.Errorf("size %d in a tree of %d: %w", n, size, ErrNotFound)
		}
		root, err = tlog.TreeHash(int64(n), hashReader{txn})
		return err
	})
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("root at %d: %w", n, err)
	}
	return root, nil
}

package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// prune deletes up to c.Max bodies of entries older than c.Before, then
// request IDs and command outcomes older than it, reading their keys in
// order from c.After and at most pruneScan of them; when nothing is left
// it appends the prune entry. Bodies go in index order (entries are in
// time order), from the first unpruned (m.pruned): no command reads a
// body twice, and no command reads the whole keyspace.
func (f *fsm) prune(txn *badger.Txn, m *meta, c *command, o *outcome) error {
	if c.Entry == nil || c.Entry.validate() != nil || c.Max <= 0 {
		o.Code = "invalid"
		return nil
	}
	if ok, err := pruneAllowed(txn, m, c.Before); err != nil || !ok {
		o.Code = "retention"
		return err
	}
	n := 0
	for m.pruned < m.size && n < c.Max {
		r, err := readRecord(txn, m.pruned)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("entry %d missing: %w", m.pruned, ErrCorrupt)
		}
		if err != nil {
			return err
		}
		h, err := DecodeLeaf(r.leaf)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", m.pruned, ErrCorrupt)
		}
		if h.Time.UnixNano() >= c.Before {
			break
		}
		if len(r.body) > 0 {
			if err := txn.Set(idxKey(pfxEntry, m.pruned), r.withoutBody()); err != nil {
				return err
			}
		}
		m.pruned++
		n++
	}
	// Bodies may be left (c.Max reached): the keys wait for the next
	// command, which reads them from where this one was to start.
	bodiesLeft := n >= c.Max
	var next []byte
	if !bodiesLeft {
		var k int
		var err error
		if next, k, err = pruneKeys(txn, c.After, c.Before, c.Max-n); err != nil {
			return err
		}
		n += k
	}
	o.Pruned = c.Done + uint64(n)
	if bodiesLeft || next != nil {
		o.More = true
		o.Cursor = next
		if bodiesLeft {
			o.Cursor = c.After
		}
		return nil
	}
	e := *c.Entry
	e.Type = TypePrune
	e.Outcome = OutcomeOK
	e.Count = o.Pruned
	var err error
	o.Index, err = f.appendEntry(txn, m, e)
	o.Appended = true
	return err
}

// pruneKeys deletes up to max command outcomes and request IDs whose time
// is before t: request IDs hold the time, command outcomes theirs
// (decodeOutcome). It reads keys in order (outcomes, then request IDs)
// from the key from (nil: the first), at most pruneScan of them, and
// returns the key to read on from, nil when none is left.
func pruneKeys(txn *badger.Txn, from []byte, t int64, max int) ([]byte, int, error) {
	var old [][]byte
	read := 0
	var next []byte
	for _, pfx := range []string{pfxCommand, pfxRequest} {
		start := []byte(pfx)
		if bytes.Compare(from, start) > 0 {
			if !bytes.HasPrefix(from, start) {
				continue // past this prefix
			}
			start = from
		}
		err := func() error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfx), PrefetchValues: false})
			defer it.Close()
			for it.Seek(start); it.Valid(); it.Next() {
				if len(old) >= max || read >= pruneScan {
					next = it.Item().KeyCopy(nil)
					return nil
				}
				read++
				var at int64
				err := it.Item().Value(func(v []byte) error {
					if pfx == pfxRequest {
						if len(v) != 8 {
							return ErrCorrupt
						}
						at = int64(binary.BigEndian.Uint64(v))
						return nil
					}
					o, err := decodeOutcome(v)
					at = o.Time
					return err
				})
				if err != nil {
					return err
				}
				if at < t {
					old = append(old, it.Item().KeyCopy(nil))
				}
			}
			return nil
		}()
		if err != nil {
			return nil, 0, err
		}
		if next != nil {
			break
		}
	}
	for _, k := range old {
		if err := txn.Delete(k); err != nil {
			return nil, 0, err
		}
	}
	return next, len(old), nil
}

// Prune deletes the bodies and salts of entries older than before, and the
// spent request IDs and command outcomes older than it, then appends a
// prune entry (actor in its body, Count = what was deleted) and returns its
// receipt. Leaves, tree and proofs stay valid. A date later than now minus
// the retention rule (SetRetention; with none committed yet, Prune first
// commits Config.Retention as the rule) fails with ErrRetention, here and,
// by the command's time, in Apply on every replica. The deletions go
// through Raft in commands of at most 1,000, so a large prune is several
// commands.
func (l *Ledger) Prune(ctx context.Context, before time.Time, actor string) (Receipt, uint64, error) {
	rule, ok, err := l.retention()
	if err != nil {
		return Receipt{}, 0, fmt.Errorf("prune ledger: %w", err)
	}
	if !ok {
		// No rule committed yet: this replica's Config.Retention becomes it.
		if _, err := l.SetRetention(ctx, l.cfg.Retention); err != nil {
			return Receipt{}, 0, fmt.Errorf("prune ledger: %w", err)
		}
		rule = l.cfg.Retention
	}
	limit := l.cfg.Now().Add(-rule)
	if before.After(limit) {
		return Receipt{}, 0, fmt.Errorf("prune ledger before %s: the retention of %s keeps everything after %s: %w",
			before.UTC().Format(time.RFC3339), rule, limit.UTC().Format(time.RFC3339), ErrRetention)
	}
	e := Entry{Header: Header{Type: TypePrune, Outcome: OutcomeOK,
		Digest: sha256.Sum256([]byte(before.UTC().Format(time.RFC3339Nano)))},
		Body: Body{Actor: actor, Purpose: "retention"}}
	if err := l.prepare(&e); err != nil {
		return Receipt{}, 0, fmt.Errorf("prune ledger: %w", err)
	}
	var done uint64
	var after []byte
	for {
		c := &command{Op: opPrune, Entry: &e, Before: before.UnixNano(), Max: pruneChunk, Done: done, After: after}
		o, err := l.submit(ctx, c)
		if err != nil {
			return Receipt{}, done, fmt.Errorf("prune ledger: %w", err)
		}
		done, after = o.Pruned, o.Cursor
		if !o.More {
			// Reclaim the space of deleted values; nothing to reclaim is fine.
			if err := l.db.RunValueLogGC(0.5); err != nil && !errors.Is(err, badger.ErrNoRewrite) {
				l.log.Warn("value log garbage collection after prune", "err", err)
			}
			return o.receipt(c.ID), done, nil
		}
	}
}

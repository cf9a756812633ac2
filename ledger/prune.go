package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// prune deletes up to c.Max bodies of entries older than c.Before, and the
// request IDs and command outcomes older than it; when nothing is left it
// appends the prune entry.
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
	for _, pfx := range []string{pfxRequest, pfxCommand} {
		if n >= c.Max {
			break
		}
		old, err := olderThan(txn, pfx, c.Before, c.Max-n)
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		n += len(old)
	}
	o.Pruned = c.Done + uint64(n)
	if n >= c.Max {
		o.More = true
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

// olderThan lists up to max keys under pfx whose value holds a time before t:
// request IDs hold the time, command outcomes theirs (decodeOutcome).
func olderThan(txn *badger.Txn, pfx string, t int64, max int) ([][]byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfx), PrefetchValues: false})
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid() && len(out) < max; it.Next() {
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
			if err != nil {
				return err
			}
			at = o.Time
			return nil
		})
		if err != nil {
			return nil, err
		}
		if at < t {
			out = append(out, it.Item().KeyCopy(nil))
		}
	}
	return out, nil
}

// pruneChunk bounds the deletions of one prune command (one transaction).
const pruneChunk = 1000

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
	for {
		c := &command{Op: opPrune, Entry: &e, Before: before.UnixNano(), Max: pruneChunk, Done: done}
		o, err := l.submit(ctx, c)
		if err != nil {
			return Receipt{}, done, fmt.Errorf("prune ledger: %w", err)
		}
		done = o.Pruned
		if !o.More {
			// Reclaim the space of deleted values; nothing to reclaim is fine.
			if err := l.db.RunValueLogGC(0.5); err != nil && !errors.Is(err, badger.ErrNoRewrite) {
				l.log.Warn("value log garbage collection after prune", "err", err)
			}
			return o.receipt(c.ID), done, nil
		}
	}
}

package ledger

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Export file names inside an export directory.
const (
	ExportCheckpoint = "checkpoint"    // the signed checkpoint note
	ExportPublicKey  = "ledger.pub"    // the note verifier key, one line
	ExportEntries    = "entries.jsonl" // one ExportLine a line, in index order
)

// ExportLine is one line of entries.jsonl.
type ExportLine struct {
	Index  uint64  `json:"index"`
	Leaf   []byte  `json:"leaf"`           // base64 of the exact leaf bytes
	Header Header  `json:"header"`         // the leaf, decoded
	Body   *Body   `json:"body,omitempty"` // absent once pruned
	Salt   *Digest `json:"salt,omitempty"` // absent once pruned
}

// Export appends an export entry (actor in its body), signs a checkpoint
// that covers it, and writes dir/checkpoint, dir/ledger.pub and
// dir/entries.jsonl for the tree of that checkpoint. dir is created; the
// three files are replaced.
func (l *Ledger) Export(ctx context.Context, dir, actor string) (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, fmt.Errorf("export ledger: no agency key to sign the checkpoint: %w", ErrInvalid)
	}
	sum := sha256.Sum256([]byte(dir))
	if _, err := l.Append(ctx, Entry{
		Header: Header{Type: TypeExport, Outcome: OutcomeOK, Digest: sum},
		Body:   Body{Actor: actor, Purpose: "export"},
	}); err != nil {
		return Checkpoint{}, fmt.Errorf("export ledger: %w", err)
	}
	cp, err := l.signCheckpoint()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("export ledger: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Checkpoint{}, fmt.Errorf("export ledger: %w", err)
	}
	if err := writeFile(filepath.Join(dir, ExportCheckpoint), func(w *bufio.Writer) error {
		_, err := w.Write(cp.Note)
		return err
	}); err != nil {
		return Checkpoint{}, err
	}
	if err := writeFile(filepath.Join(dir, ExportPublicKey), func(w *bufio.Writer) error {
		_, err := w.WriteString(l.verKey + "\n")
		return err
	}); err != nil {
		return Checkpoint{}, err
	}
	err = writeFile(filepath.Join(dir, ExportEntries), func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		return l.db.View(func(txn *badger.Txn) error {
			for i := uint64(0); i < cp.Size; i++ {
				if i%1024 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				e, leaf, err := readEntry(txn, i)
				if err != nil {
					return err
				}
				line := ExportLine{Index: i, Leaf: leaf, Header: e.Header}
				if !e.Pruned {
					line.Body, line.Salt = &e.Body, &e.Salt
				}
				if err := enc.Encode(&line); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}

// writeFile writes path through a temporary file and a rename.
func writeFile(path string, fill func(*bufio.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("export ledger: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("export ledger %s: %w", filepath.Base(path), err)
	}
	return nil
}

// pruneChunk bounds the deletions of one prune command (one transaction).
const pruneChunk = 1000

// Prune deletes the bodies and salts of entries older than before, and the
// spent request IDs and command outcomes older than it, then appends a
// prune entry (actor in its body, Count = what was deleted) and returns its
// receipt. Leaves, tree and proofs stay valid. A date later than now minus
// the retention fails with ErrRetention. The deletions go through Raft in
// commands of at most 1,000, so a large prune is several commands.
func (l *Ledger) Prune(ctx context.Context, before time.Time, actor string) (Receipt, uint64, error) {
	limit := l.cfg.Now().Add(-l.cfg.Retention)
	if before.After(limit) {
		return Receipt{}, 0, fmt.Errorf("prune ledger before %s: the retention of %s keeps everything after %s: %w",
			before.UTC().Format(time.RFC3339), l.cfg.Retention, limit.UTC().Format(time.RFC3339), ErrRetention)
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

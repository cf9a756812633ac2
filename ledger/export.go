package ledger

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/ledger/format"
)

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
				line := format.ExportLine{Index: i, Leaf: leaf, Header: e.Header}
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

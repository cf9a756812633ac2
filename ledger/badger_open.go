package ledger

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// OpenBadger opens a badger database as badger.Open does, after removing
// the empty memtable files in its directory. A process killed between
// badger's creation of a memtable file (NNNNN.mem) and its first write
// leaves it 0 bytes long, and badger.Open then fails with "while opening
// fid: N err: Create a new file" (dgraph-io/badger#2207; badger v4.9.6 still does): a
// killed replica would not start again. An empty memtable holds nothing,
// so removing it loses nothing; badger makes a new one. A read-only or
// in-memory open is left as badger.Open.
func OpenBadger(opts badger.Options) (*badger.DB, error) {
	if !opts.ReadOnly && !opts.InMemory && opts.Dir != "" {
		mems, err := filepath.Glob(filepath.Join(opts.Dir, "*.mem"))
		if err != nil {
			return nil, fmt.Errorf("list memtables of %s: %w", opts.Dir, err)
		}
		for _, m := range mems {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
				if err := os.Remove(m); err != nil {
					return nil, fmt.Errorf("remove the empty memtable %s: %w", m, err)
				}
			}
		}
	}
	return badger.Open(opts)
}

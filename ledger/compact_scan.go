package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/y"
)

// Found is one place FindOnDisk found a needle.
type Found struct {
	Path   string // the file
	Needle int    // index of the needle in the caller's list
	How    string // "raw", "snapshot", "log file" or "database"
}

func (f Found) String() string { return fmt.Sprintf("%s (%s): needle %d", f.Path, f.How, f.Needle) }

// FindOnDisk looks for needles in every file under dir as one who holds
// the storage key would: the raw bytes of every file; the decrypted
// stream of every Raft snapshot (state.bin, snapcrypt.go); every entry of
// every badger write-ahead and value-log file (.mem, .vlog), decrypted,
// live or garbage; and every version of every key of every badger
// database, deleted or overwritten ones too, as long as a table still
// holds it. It is the check that erasure (Compact) worked, for tests and
// for an operator's own check of a stopped replica: dir must not be in
// use (the databases are opened from a copy). key is the storage key
// (nil: none).
func FindOnDisk(dir string, key []byte, needles [][]byte) ([]Found, error) {
	var out []Found
	look := func(path, how string, b []byte) {
		for i, n := range needles {
			if len(n) > 0 && bytes.Contains(b, n) {
				out = append(out, Found{Path: path, Needle: i, How: how})
			}
		}
	}
	dbs := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		look(path, "raw", b)
		name := d.Name()
		switch {
		case name == "state.bin" && key != nil:
			id := filepath.Base(filepath.Dir(path))
			sr, err := newSnapReader(io.NopCloser(bytes.NewReader(b)), key, id)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			plain, err := io.ReadAll(sr)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			look(path, "snapshot", plain)
		case strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".vlog"):
			plain, err := readLogFile(filepath.Dir(path), b, key)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			look(path, "log file", plain)
		case name == "MANIFEST":
			dbs[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	for d := range dbs {
		plain, err := readAllVersions(d, key)
		if err != nil {
			return out, fmt.Errorf("%s: %w", d, err)
		}
		look(d, "database", plain)
	}
	return out, nil
}

// readLogFile returns the keys and values of every entry of a badger
// write-ahead or value-log file b of the database in dir, decrypted.
func readLogFile(dir string, b, key []byte) ([]byte, error) {
	const hdr = 20 // key ID (8), base IV (12)
	if len(b) < hdr {
		return nil, nil
	}
	var dk []byte
	if id := binary.BigEndian.Uint64(b[:8]); id != 0 {
		if key == nil {
			return nil, errors.New("encrypted, and no key given")
		}
		kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key})
		if err != nil {
			return nil, err
		}
		k, err := kr.DataKey(id)
		kr.Close()
		if err != nil {
			return nil, err
		}
		dk = k.Data
	}
	iv := make([]byte, 16)
	copy(iv, b[8:hdr])
	var out []byte
	for off := hdr; off < len(b); {
		e := b[off:]
		if len(e) < 2 {
			break
		}
		i := 2
		klen, n := binary.Uvarint(e[i:])
		if n <= 0 {
			break
		}
		i += n
		vlen, n := binary.Uvarint(e[i:])
		if n <= 0 {
			break
		}
		i += n
		if _, n = binary.Uvarint(e[i:]); n <= 0 {
			break
		}
		i += n
		end := i + int(klen) + int(vlen)
		if klen == 0 && vlen == 0 || end+4 > len(e) || end < i {
			break // the zeroes after the last entry, or a torn one
		}
		kv := e[i:end]
		if dk != nil {
			binary.BigEndian.PutUint32(iv[12:], uint32(off))
			var err error
			if kv, err = y.XORBlockAllocate(kv, dk, iv); err != nil {
				return nil, err
			}
		}
		out = append(out, kv...)
		out = append(out, 0)
		off += end + 4
	}
	return out, nil
}

// readAllVersions opens a copy of the badger database in dir with key and
// returns every version of every key and its value.
func readAllVersions(dir string, key []byte) ([]byte, error) {
	cp, err := os.MkdirTemp("", "xborder-scan-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cp)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), b, 0o600); err != nil {
			return nil, err
		}
	}
	opts := badger.DefaultOptions(cp).WithLogger(nil).WithNumVersionsToKeep(1 << 30).WithCompactL0OnClose(false).
		WithNumCompactors(0)
	if key != nil {
		opts = opts.WithEncryptionKey(key).WithIndexCacheSize(1 << 20)
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []byte
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			out = append(out, item.Key()...)
			out = append(out, 0)
			_ = item.Value(func(v []byte) error { out = append(out, v...); return nil })
			out = append(out, 0)
		}
		return nil
	})
	return out, err
}

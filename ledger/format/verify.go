package format

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrVerify is wrapped by every *VerifyError: an export does not verify.
var ErrVerify = errors.New("ledger export does not verify")

// VerifyError says where an export failed to verify.
type VerifyError struct {
	Index  int64 // first bad entry index, or -1 when no single entry is at fault
	Reason string
}

func (e *VerifyError) Error() string {
	if e.Index < 0 {
		return "verify ledger export: " + e.Reason
	}
	return fmt.Sprintf("verify ledger export: entry %d: %s", e.Index, e.Reason)
}

// Unwrap returns ErrVerify.
func (e *VerifyError) Unwrap() error { return ErrVerify }

func bad(i int64, format string, args ...any) error {
	return &VerifyError{Index: i, Reason: fmt.Sprintf(format, args...)}
}

// Report says what Verify checked.
type Report struct {
	Origin      string
	Size        uint64    // entries, equal to the checkpoint's size
	Root        tlog.Hash // root, equal to the checkpoint's
	Bodies      uint64    // entries whose body matched its hash
	Pruned      uint64    // entries whose body was pruned
	TrustedSize uint64    // size of the trusted checkpoint proven consistent (0: none given)
	Cosigners   []string  // VerifyQuorum: the witnesses whose cosignature verified
}

// hashStore is an in-memory tlog hash storage.
type hashStore []tlog.Hash

func (s hashStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = s[x]
	}
	return out, nil
}

// Verify checks an export offline: the checkpoint's signature with
// verifierKey (name+hash+base64), every line's header and body against its
// leaf, the tree recomputed from the leaves against the checkpoint's size
// and root, and, when trusted (a signed checkpoint note) is given, that its
// tree is a prefix of the exported one (an RFC 6962 consistency proof built
// from the leaves and checked against both roots). It reads only the files
// ExportCheckpoint and ExportEntries of fsys (os.DirFS of the export
// directory). Any mismatch is a *VerifyError naming the first bad index; a
// file that cannot be read is another error.
func Verify(fsys fs.FS, verifierKey string, trusted []byte) (*Report, error) {
	note, err := fs.ReadFile(fsys, ExportCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("verify ledger export: %w", err)
	}
	cp, err := ParseCheckpoint(note, verifierKey)
	if err != nil {
		return nil, bad(-1, "checkpoint: %v", err)
	}
	var tcp Checkpoint
	if trusted != nil {
		if tcp, err = ParseCheckpoint(trusted, verifierKey); err != nil {
			return nil, bad(-1, "trusted checkpoint: %v", err)
		}
		if tcp.Size > cp.Size {
			return nil, bad(-1, "trusted checkpoint has %d entries, the export only %d", tcp.Size, cp.Size)
		}
	}
	f, err := fsys.Open(ExportEntries)
	if err != nil {
		return nil, fmt.Errorf("verify ledger export: %w", err)
	}
	defer f.Close()
	rep := &Report{Origin: cp.Origin}
	var hashes hashStore
	err = readLines(f, func(i uint64, line []byte) error {
		l, err := checkLine(i, line)
		if err != nil {
			return err
		}
		if l.Body != nil {
			rep.Bodies++
		} else {
			rep.Pruned++
		}
		hs, err := tlog.StoredHashes(int64(i), l.Leaf, hashes)
		if err != nil {
			return bad(int64(i), "hash: %v", err)
		}
		hashes = append(hashes, hs...)
		rep.Size = i + 1
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rep.Size != cp.Size {
		return nil, bad(int64(min(rep.Size, cp.Size)), "the export has %d entries, its checkpoint %d", rep.Size, cp.Size)
	}
	if rep.Root, err = tlog.TreeHash(int64(rep.Size), hashes); err != nil {
		return nil, bad(-1, "tree hash: %v", err)
	}
	if rep.Root != cp.Root {
		return nil, bad(-1, "the entries' root does not match the signed checkpoint's (an entry was altered together with its header, or the checkpoint belongs to another export)")
	}
	if trusted != nil {
		proof, err := tlog.ProveTree(int64(cp.Size), int64(tcp.Size), hashes)
		if err != nil {
			return nil, bad(-1, "consistency proof: %v", err)
		}
		if err := tlog.CheckTree(proof, int64(cp.Size), cp.Root, int64(tcp.Size), tcp.Root); err != nil {
			return nil, bad(-1, "not consistent with the trusted checkpoint of size %d: %v", tcp.Size, err)
		}
		rep.TrustedSize = tcp.Size
	}
	return rep, nil
}

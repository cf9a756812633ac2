package node

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/xborder/xborder/ident"
)

// Record namespaces of the data group. Holdings never enter the audit
// group: the audit ledger holds only counts and digests.
const (
	// nsRows: key <kind>/<import ID>/<batch %06d>; value: encodeRows of
	// the batch's canonical identifiers and references. One record per
	// batch, so that a million-row import is a few hundred Raft commands.
	nsRows = "rows"
	// nsManifest: key <kind>/<epoch %020d>; value: manifest JSON, the
	// batches each set version of that epoch adds.
	nsManifest = "manifest"
)

// manifest lists the batches of each set version of one (kind, epoch):
// Versions[0] is the base (version 1), Versions[i] the delta of version
// i+1. Every replica builds the same bytes from it.
//
// Bases lists the versions after the first that are bases by decree: a
// removal rewrote batches that earlier versions were built from, so every
// replica builds that version as a new base of every batch of versions 1
// to it, as the batches are now, and a replica that builds the set from
// scratch (joined later, rebuilt its store) starts there. The value is the
// removal that decreed it.
type manifest struct {
	Kind     string         `json:"kind"`
	Epoch    uint64         `json:"epoch"`
	Versions [][]string     `json:"versions"`
	Bases    map[int]string `json:"bases,omitempty"`
}

// decreedBase returns the newest version at most upTo that is a base by
// decree (Bases), or 0.
func (m manifest) decreedBase(upTo int) int {
	b := 0
	for v := range m.Bases {
		if v <= upTo && v > b {
			b = v
		}
	}
	return b
}

func manifestKey(kind string, epoch uint64) string { return fmt.Sprintf("%s/%020d", kind, epoch) }

// recordGetter reads a replicated record (a *raftGroup or *ledger.Ledger).
type recordGetter interface {
	Get(ns, key string) ([]byte, error)
}

// readManifest reads the manifest of (kind, epoch) from the data group; a
// missing one is returned empty with ledger.ErrNotFound.
func readManifest(data recordGetter, kind string, epoch uint64) (manifest, error) {
	m := manifest{Kind: kind, Epoch: epoch}
	b, err := data.Get(nsManifest, manifestKey(kind, epoch))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest of %s epoch %d: %w", kind, epoch, err)
	}
	return m, nil
}

// row is one stored identifier.
type row struct {
	value string // canonical form
	ref   string // the agency's record reference, may be empty
}

// encodeRows writes rows as uvarint-prefixed strings.
func encodeRows(rows []row) []byte {
	var b []byte
	for _, r := range rows {
		b = binary.AppendUvarint(b, uint64(len(r.value)))
		b = append(b, r.value...)
		b = binary.AppendUvarint(b, uint64(len(r.ref)))
		b = append(b, r.ref...)
	}
	return b
}

// errRows: a stored batch does not decode.
var errRows = errors.New("stored rows do not decode")

// decodeRows reads what encodeRows wrote.
func decodeRows(b []byte) ([]row, error) {
	var out []row
	str := func() (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) || n > ident.MaxLen*16 {
			return "", errRows
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	for len(b) > 0 {
		v, err := str()
		if err != nil {
			return nil, err
		}
		r, err := str()
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, errRows
		}
		out = append(out, row{value: v, ref: r})
	}
	return out, nil
}

// countRows counts the rows of a batch record without decoding them.
func countRows(b []byte) (int, error) {
	c := 0
	for len(b) > 0 {
		for range 2 {
			n, k := binary.Uvarint(b)
			if k <= 0 || n > uint64(len(b)-k) {
				return c, errRows
			}
			b = b[k+int(n):]
		}
		c++
	}
	return c, nil
}

// splitBatchKey splits a batch key <kind>/<import ID>/<batch>.
func splitBatchKey(key string) (kind, id string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

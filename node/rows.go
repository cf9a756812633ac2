package node

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/xborder/xborder/exchange"
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
	class class  // the subject class of the record (docs/victims.md)
	// contact is a contact point for the record and handling its handling
	// code (H0-H3), given at import (issue 23): only the liaison sees them,
	// and a follow-up's answer shares them. Empty in batches stored before
	// (and handling empty means: the agreement's code for the partner).
	contact, handling string
}

// class is the subject class of a holding: who the identifier belongs to
// in the agency's case. It decides the reach of the row: the set, and the
// key, that answers for it.
type class uint8

// Classes. The numbers are stored in batch records: never renumber.
const (
	classUnknown class = 0 // absent at import; answers in the open reach like a suspect's
	classSuspect class = 1
	classVictim  class = 2
	classWitness class = 3
)

// classNames are the classes by number, as the CLI and the API write them.
var classNames = [...]string{classUnknown: "unknown", classSuspect: "suspect", classVictim: "victim", classWitness: "witness"}

func (c class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// parseClass reads a class name; "" is unknown.
func parseClass(s string) (class, error) {
	if s == "" {
		return classUnknown, nil
	}
	for i, n := range classNames {
		if n == s {
			return class(i), nil
		}
	}
	return 0, fmt.Errorf("class %q is not one of suspect, victim, witness, unknown", s)
}

// Reaches: the sets, and keys, of each (kind, epoch). The order is the
// order of docs and ledger headers.
const (
	reachOpen    = exchange.ReachOpen
	reachVictim  = exchange.ReachVictim
	reachWitness = exchange.ReachWitness
)

// reachNames are the reaches in their canonical order.
var reachNames = exchange.Reaches

// reachOrder is the position of reach in reachNames (-1 if none).
func reachOrder(reach string) int { return slices.Index(reachNames, reach) }

// reach returns the reach of a class: suspect and unknown records answer
// in the open reach, victims and witnesses in their own.
func (c class) reach() string {
	switch c {
	case classVictim:
		return reachVictim
	case classWitness:
		return reachWitness
	}
	return reachOpen
}

// heldKey is the key of a row in the duplicate index and the imports'
// seen maps: an identifier is held once per reach, so a number held as a
// suspect's and as a victim's answers in both sets. The open reach keeps
// the bare canonical form (no canonical form holds a NUL byte).
func heldKey(value string, c class) string {
	if r := c.reach(); r != reachOpen {
		return value + "\x00" + r
	}
	return value
}

// Batch records: the first encoding (before subject classes) is a list of
// uvarint-prefixed value and reference strings; the second starts with the
// byte rowsClassed (which no first-encoding record starts with: a value is
// never empty) and adds one class byte after each row's reference; the
// third (issue 23) starts with rowsMeta (two zero bytes, which no second-
// encoding record starts with, for the same reason) and adds, after the
// class byte, a uvarint-prefixed contact and a handling byte (0 none, 1 to
// 4 for H0 to H3). encodeRows writes the third only for batches with a
// contact or handling code, so that older batches keep their bytes.
const rowsClassed = 0x00

var rowsMeta = []byte{0x00, 0x00}

// handlingCodes are the handling codes by their byte in the third
// encoding, less one.
var handlingCodes = [...]string{"H0", "H1", "H2", "H3"}

// validHandling reports whether h is a handling code H0 to H3.
func validHandling(h string) bool { return slices.Contains(handlingCodes[:], h) }

// encodeRows writes rows in the second encoding, or the third when a row
// has a contact or handling code.
func encodeRows(rows []row) []byte {
	meta := slices.ContainsFunc(rows, func(r row) bool { return r.contact != "" || r.handling != "" })
	b := []byte{rowsClassed}
	if meta {
		b = slices.Clone(rowsMeta)
	}
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, r := range rows {
		str(r.value)
		str(r.ref)
		b = append(b, byte(r.class))
		if meta {
			str(r.contact)
			b = append(b, byte(slices.Index(handlingCodes[:], r.handling)+1))
		}
	}
	return b
}

// errRows: a stored batch does not decode.
var errRows = errors.New("stored rows do not decode")

// walkRows decodes a batch record of any encoding and calls fn with each
// row in order.
func walkRows(b []byte, fn func(row)) error {
	classed, meta := false, false
	switch {
	case len(b) >= 2 && b[0] == rowsMeta[0] && b[1] == rowsMeta[1]:
		classed, meta, b = true, true, b[2:]
	case len(b) > 0 && b[0] == rowsClassed:
		classed, b = true, b[1:]
	}
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
		var r row
		var err error
		if r.value, err = str(); err != nil {
			return err
		}
		if r.ref, err = str(); err != nil {
			return err
		}
		if r.value == "" {
			return errRows
		}
		if classed {
			if len(b) == 0 || int(b[0]) >= len(classNames) {
				return errRows
			}
			r.class, b = class(b[0]), b[1:]
		}
		if meta {
			if r.contact, err = str(); err != nil {
				return err
			}
			if len(b) == 0 || int(b[0]) > len(handlingCodes) {
				return errRows
			}
			if b[0] > 0 {
				r.handling = handlingCodes[b[0]-1]
			}
			b = b[1:]
		}
		fn(r)
	}
	return nil
}

// decodeRows reads what encodeRows wrote, or a record of the first
// encoding (its rows are of class unknown).
func decodeRows(b []byte) ([]row, error) {
	var out []row
	if err := walkRows(b, func(r row) { out = append(out, r) }); err != nil {
		return nil, err
	}
	return out, nil
}

// countRows counts the rows of a batch record, per class, without
// keeping them.
func countRows(b []byte) (int, error) {
	n, _, err := countClasses(b)
	return n, err
}

// countClasses counts the rows of a batch record, in all and per class.
func countClasses(b []byte) (int, [len(classNames)]int, error) {
	var per [len(classNames)]int
	c := 0
	err := walkRows(b, func(r row) {
		per[r.class]++
		c++
	})
	return c, per, err
}

// splitBatchKey splits a batch key <kind>/<import ID>/<batch>.
func splitBatchKey(key string) (kind, id string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

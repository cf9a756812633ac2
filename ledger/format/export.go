package format

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
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

// maxExportLine bounds one line of entries.jsonl.
const maxExportLine = 64 << 10

// readLines calls fn for each line of entries.jsonl with its position.
func readLines(r io.Reader, fn func(i uint64, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxExportLine)
	var i uint64
	for sc.Scan() {
		if err := fn(i, sc.Bytes()); err != nil {
			return err
		}
		i++
	}
	if err := sc.Err(); err != nil {
		return bad(int64(i), "reading entries: %v", err)
	}
	return nil
}

// checkLine checks that line i of entries.jsonl is well formed, carries
// index i, that its header is its leaf decoded and its body (when present)
// matches the leaf's body hash.
func checkLine(i uint64, line []byte) (ExportLine, error) {
	var l ExportLine
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&l); err != nil {
		return ExportLine{}, bad(int64(i), "malformed line: %v", err)
	}
	if l.Index != i {
		return ExportLine{}, bad(int64(i), "line %d carries index %d (an entry is missing or out of order)", i+1, l.Index)
	}
	h, err := DecodeLeaf(l.Leaf)
	if err != nil {
		return ExportLine{}, bad(int64(i), "%v", err)
	}
	if h.Index != i {
		return ExportLine{}, bad(int64(i), "leaf carries index %d", h.Index)
	}
	if !bytes.Equal(EncodeLeaf(&l.Header), l.Leaf) {
		return ExportLine{}, bad(int64(i), "header does not match the leaf")
	}
	if (l.Body == nil) != (l.Salt == nil) {
		return ExportLine{}, bad(int64(i), "body and salt must come together")
	}
	if l.Body == nil {
		return l, nil
	}
	if BodyHash(*l.Salt, *l.Body) != h.BodyHash {
		return ExportLine{}, bad(int64(i), "body does not match the body hash in the leaf")
	}
	return l, nil
}

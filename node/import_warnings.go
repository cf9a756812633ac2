package node

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/ledger"
)

// nsWarnings: key a batch key of nsRows; value (uvarint) the rows of that
// batch that ident.Check warned of when they were stored (phone numbers
// possible but not valid). It is only a hint of which batches to look at:
// DataStats checks the rows of those batches again, so a removal that
// rewrote a batch is counted right, and a batch without the hint has no
// such row. Kept in a namespace of its own so that the batch records and
// their format stay as they are (docs/holdings.md).
const nsWarnings = "warnings"

// markWarnings records that batch key holds n rows with a warning; n = 0
// records nothing. One command ID per batch, as for the batch itself.
func (h *holdings) markWarnings(ctx context.Context, key string, n int) error {
	if n == 0 {
		return nil
	}
	_, err := h.data.Put(ledger.WithCommandID(ctx, "warnings/"+key), nsWarnings, key, binary.AppendUvarint(nil, uint64(n)))
	return err
}

// warningBatches returns the batch keys with a warning hint.
func (h *holdings) warningBatches() (map[string]bool, error) {
	out := map[string]bool{}
	err := h.data.Scan(nsWarnings, "", func(key string, _ []byte) error {
		out[key] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read import warnings: %w", err)
	}
	return out, nil
}

// countWarnedRecord counts the rows of a batch record of kind that
// ident.Check warns of now.
func countWarnedRecord(kind string, rec []byte) (int, error) {
	k, err := ident.ParseKind(kind)
	if err != nil {
		return 0, nil
	}
	rows, err := decodeRows(rec)
	if err != nil {
		return 0, err
	}
	return countWarned(k, rows), nil
}

// countWarned counts the rows, canonical forms of kind k, that ident.Check
// warns of.
func countWarned(k ident.Kind, rows []row) int {
	n := 0
	for _, r := range rows {
		if _, warn, err := ident.Check(k, r.value, ident.Options{}); err == nil && warn != nil {
			n++
		}
	}
	return n
}

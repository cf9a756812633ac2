package ledger

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/ledger/format"
)

func sampleLeaf() []byte {
	e := entry(3)
	e.Version = EntryVersion
	e.Index = 42
	e.Time = time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	e.Digest[0] = 9
	return EncodeLeaf(&e.Header)
}

// FuzzParseRecord fuzzes the parser of stored entry records: it never
// panics, and a record it accepts is what encodeRecord makes of its parts.
func FuzzParseRecord(f *testing.F) {
	leaf := sampleLeaf()
	body := append(make([]byte, 32), format.EncodeBody(&Body{Actor: "a", Purpose: "p"})...)
	for _, i := range []uint64{0, 1, 6, 7} {
		hashes := make([]tlog.Hash, hashCount(i))
		f.Add(i, encodeRecord(hashes, leaf, body))
		f.Add(i, encodeRecord(hashes, leaf, nil))
	}
	f.Add(uint64(3), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, i uint64, v []byte) {
		r, err := parseRecord(i, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("parseRecord error %v is not ErrCorrupt", err)
			}
			return
		}
		hashes := make([]tlog.Hash, hashCount(i))
		for k := range hashes {
			hashes[k] = r.hash(k)
		}
		if again := encodeRecord(hashes, r.leaf, r.body); !bytes.Equal(again, v) {
			t.Errorf("encodeRecord(parseRecord(v)) differs from v:\n%x\n%x", again, v)
		}
		if len(r.body) > 0 && !bytes.Equal(r.withoutBody(), v[:len(v)-len(r.body)]) {
			t.Errorf("withoutBody is not the record up to its body")
		}
	})
}

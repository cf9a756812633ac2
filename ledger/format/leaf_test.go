package format

import (
	"bytes"
	"testing"
	"time"
)

func sampleLeaf() []byte {
	h := Header{Version: EntryVersion, Index: 42, Time: time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC),
		Type: TypeMatchOut, RequestID: "q-3", Agency: "GB", Partner: "FR", Kind: "phone", Outcome: OutcomeOK}
	h.Digest[0] = 9
	return EncodeLeaf(&h)
}

func FuzzDecodeLeaf(f *testing.F) {
	f.Add(sampleLeaf())
	f.Add([]byte{EntryVersion})
	f.Add(append(sampleLeaf(), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeLeaf(b)
		if err != nil {
			return
		}
		if again := EncodeLeaf(&h); !bytes.Equal(again, b) {
			t.Errorf("EncodeLeaf(DecodeLeaf(b)) differs from b:\n%x\n%x", again, b)
		}
	})
}

// FuzzDecodeBody: a body DecodeBody accepts re-encodes to the same bytes.
func FuzzDecodeBody(f *testing.F) {
	f.Add(EncodeBody(&Body{Actor: "officer-7", CaseRef: "case-42"}))
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := DecodeBody(b)
		if err != nil {
			return
		}
		if again := EncodeBody(&body); !bytes.Equal(again, b) {
			t.Errorf("EncodeBody(DecodeBody(b)) differs from b:\n%x\n%x", again, b)
		}
	})
}

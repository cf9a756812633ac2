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

// TestLeafVersions: a version 2 leaf carries mode and reaches after the
// fields of version 1; a version 1 leaf (ledgers written before issue 22)
// still decodes, with both empty, and re-encodes to the same bytes.
func TestLeafVersions(t *testing.T) {
	h := Header{Version: EntryVersion, Index: 7, Time: time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC),
		Type: TypeMatchIn, Agency: "TH", Partner: "GB", Kind: "phone", Outcome: OutcomeOK,
		Mode: "safeguarding", Reaches: "open,victim,witness"}
	b := EncodeLeaf(&h)
	got, err := DecodeLeaf(b)
	if err != nil {
		t.Fatalf("DecodeLeaf(version 2) = %v", err)
	}
	if got.Mode != h.Mode || got.Reaches != h.Reaches {
		t.Errorf("DecodeLeaf(version 2): mode %q reaches %q; want %q %q", got.Mode, got.Reaches, h.Mode, h.Reaches)
	}
	old := h
	old.Version, old.Mode, old.Reaches = EntryVersion1, "", ""
	b1 := EncodeLeaf(&old)
	if len(b1) != len(b)-2-len(h.Mode)-2-len(h.Reaches) {
		t.Errorf("version 1 leaf is %d bytes; want %d (version 2 without mode and reaches)", len(b1), len(b)-4-len(h.Mode)-len(h.Reaches))
	}
	got1, err := DecodeLeaf(b1)
	if err != nil {
		t.Fatalf("DecodeLeaf(version 1) = %v", err)
	}
	if got1.Version != EntryVersion1 || got1.Mode != "" || got1.Reaches != "" {
		t.Errorf("DecodeLeaf(version 1) = version %d mode %q reaches %q; want 1 and empty", got1.Version, got1.Mode, got1.Reaches)
	}
	if again := EncodeLeaf(&got1); !bytes.Equal(again, b1) {
		t.Errorf("version 1 leaf does not re-encode to the same bytes")
	}
	// A version 1 leaf with the two strings of version 2 after it has
	// trailing bytes.
	if _, err := DecodeLeaf(append(b1, 0, 0, 0, 0)); err == nil {
		t.Errorf("DecodeLeaf(version 1 + 4 bytes) = nil error; want trailing bytes")
	}
	b3 := append([]byte{3}, b[1:]...)
	if _, err := DecodeLeaf(b3); err == nil {
		t.Errorf("DecodeLeaf(version 3) = nil error; want an error")
	}
}

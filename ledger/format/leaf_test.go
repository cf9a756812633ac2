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

// TestLeafVersions: a version 3 leaf carries the follow-up ID after the
// mode and reaches of version 2, which come after the fields of version 1;
// version 1 and 2 leaves (ledgers written before issues 22 and 23) still
// decode, with the later fields empty, and re-encode to the same bytes.
func TestLeafVersions(t *testing.T) {
	h := Header{Version: EntryVersion, Index: 7, Time: time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC),
		Type: TypeFollowupIn, Agency: "TH", Partner: "GB", Kind: "phone", Outcome: OutcomeOK,
		Mode: "safeguarding", Reaches: "open,victim,witness", FollowupID: "00112233445566778899aabbccddeeff"}
	b := EncodeLeaf(&h)
	got, err := DecodeLeaf(b)
	if err != nil {
		t.Fatalf("DecodeLeaf(version 3) = %v", err)
	}
	if got.Mode != h.Mode || got.Reaches != h.Reaches || got.FollowupID != h.FollowupID {
		t.Errorf("DecodeLeaf(version 3): mode %q reaches %q follow-up %q; want %q %q %q",
			got.Mode, got.Reaches, got.FollowupID, h.Mode, h.Reaches, h.FollowupID)
	}

	v2 := h
	v2.Version, v2.Type, v2.FollowupID = EntryVersion2, TypeMatchIn, ""
	b2 := EncodeLeaf(&v2)
	if len(b2) != len(b)-2-len(h.FollowupID) {
		t.Errorf("version 2 leaf is %d bytes; want %d (version 3 without the follow-up ID)", len(b2), len(b)-2-len(h.FollowupID))
	}
	got2, err := DecodeLeaf(b2)
	if err != nil {
		t.Fatalf("DecodeLeaf(version 2) = %v", err)
	}
	if got2.Version != EntryVersion2 || got2.Mode != h.Mode || got2.Reaches != h.Reaches || got2.FollowupID != "" {
		t.Errorf("DecodeLeaf(version 2) = version %d mode %q reaches %q follow-up %q; want 2, %q, %q and empty",
			got2.Version, got2.Mode, got2.Reaches, got2.FollowupID, h.Mode, h.Reaches)
	}
	if again := EncodeLeaf(&got2); !bytes.Equal(again, b2) {
		t.Errorf("version 2 leaf does not re-encode to the same bytes")
	}
	if _, err := DecodeLeaf(append(b2, 0, 0)); err == nil {
		t.Errorf("DecodeLeaf(version 2 + 2 bytes) = nil error; want trailing bytes")
	}

	old := v2
	old.Version, old.Mode, old.Reaches = EntryVersion1, "", ""
	b1 := EncodeLeaf(&old)
	if len(b1) != len(b2)-2-len(h.Mode)-2-len(h.Reaches) {
		t.Errorf("version 1 leaf is %d bytes; want %d (version 2 without mode and reaches)", len(b1), len(b2)-4-len(h.Mode)-len(h.Reaches))
	}
	got1, err := DecodeLeaf(b1)
	if err != nil {
		t.Fatalf("DecodeLeaf(version 1) = %v", err)
	}
	if got1.Version != EntryVersion1 || got1.Mode != "" || got1.Reaches != "" || got1.FollowupID != "" {
		t.Errorf("DecodeLeaf(version 1) = version %d mode %q reaches %q follow-up %q; want 1 and empty",
			got1.Version, got1.Mode, got1.Reaches, got1.FollowupID)
	}
	if again := EncodeLeaf(&got1); !bytes.Equal(again, b1) {
		t.Errorf("version 1 leaf does not re-encode to the same bytes")
	}
	// A version 1 leaf with the two strings of version 2 after it has
	// trailing bytes.
	if _, err := DecodeLeaf(append(b1, 0, 0, 0, 0)); err == nil {
		t.Errorf("DecodeLeaf(version 1 + 4 bytes) = nil error; want trailing bytes")
	}
	// A version 3 leaf without its follow-up ID is short.
	if _, err := DecodeLeaf(append([]byte{EntryVersion}, b2[1:]...)); err == nil {
		t.Errorf("DecodeLeaf(version 3 without follow-up ID) = nil error; want an error")
	}
	b4 := append([]byte{4}, b[1:]...)
	if _, err := DecodeLeaf(b4); err == nil {
		t.Errorf("DecodeLeaf(version 4) = nil error; want an error")
	}
	for _, typ := range []Type{TypeFollowupIn, TypeFollowupOut, TypeFollowupResult, TypeFollowupAnswer} {
		p, err := ParseType(typ.String())
		if err != nil || p != typ {
			t.Errorf("ParseType(%q) = %v, %v; want %d", typ.String(), p, err, typ)
		}
	}
}

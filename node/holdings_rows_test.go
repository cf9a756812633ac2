package node

import "testing"

func TestRowsRoundTrip(t *testing.T) {
	tests := [][]row{nil, {{value: "a"}}, {{value: "+447700900123", ref: "case-1"}, {value: "x", ref: ""}}}
	for _, rows := range tests {
		got, err := decodeRows(encodeRows(rows))
		if err != nil || len(got) != len(rows) {
			t.Errorf("decodeRows(encodeRows(%v)) = %v, %v", rows, got, err)
			continue
		}
		for i := range rows {
			if got[i] != rows[i] {
				t.Errorf("row %d = %v; want %v", i, got[i], rows[i])
			}
		}
	}
}

func FuzzDecodeRows(f *testing.F) {
	f.Add(encodeRows([]row{{value: "+447700900123", ref: "r"}}))
	f.Add([]byte{0x05, 'a'})
	f.Add([]byte{0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := decodeRows(b)
		if err != nil {
			return
		}
		again, err := decodeRows(encodeRows(rows))
		if err != nil || len(again) != len(rows) {
			t.Fatalf("round trip of %v: %v, %v", rows, again, err)
		}
	})
}

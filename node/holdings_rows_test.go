package node

import (
	"slices"
	"testing"
)

func TestRowsRoundTrip(t *testing.T) {
	tests := [][]row{nil, {{value: "a"}}, {{value: "+447700900123", ref: "case-1"}, {value: "x", ref: ""}},
		{{value: "+66812345678", ref: "v-1", class: classVictim}, {value: "+66812345679", class: classSuspect},
			{value: "+66812345670", class: classWitness}, {value: "+66812345671"}},
		{{value: "+66812345678", ref: "v-1", class: classVictim, contact: "desk 4, +66 2 000 0000", handling: "H3"},
			{value: "+66812345679", handling: "H0"}, {value: "+66812345670", contact: "TH-AHTD liaison"}}}
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

// TestRowsMetaEncoding: a batch with a contact or handling code is in the
// third encoding, which the second's reader would refuse rather than
// misread, and counts; one without keeps the second encoding's bytes; a
// bad handling byte does not decode.
func TestRowsMetaEncoding(t *testing.T) {
	plain := []row{{value: "a", ref: "r", class: classSuspect}}
	if b := encodeRows(plain); b[0] != rowsClassed || b[1] == 0 {
		t.Errorf("encodeRows(no contact, no handling) = %x; want the second encoding", b)
	}
	meta := []row{{value: "a", ref: "r", class: classVictim, contact: "c", handling: "H2"}, {value: "b", class: classWitness}}
	b := encodeRows(meta)
	if b[0] != 0 || b[1] != 0 {
		t.Fatalf("encodeRows(contact, handling) = %x; want the third encoding", b)
	}
	n, per, err := countClasses(b)
	if err != nil || n != 2 || per[classVictim] != 1 || per[classWitness] != 1 {
		t.Errorf("countClasses(third encoding) = %d %v %v; want 1 victim and 1 witness", n, per, err)
	}
	bad := slices.Clone(b)
	bad[len(bad)-1] = 9 // handling byte of the last row
	if _, err := decodeRows(bad); err == nil {
		t.Errorf("decodeRows(handling byte 9) = nil error; want errRows")
	}
	if _, err := decodeRows(b[:len(b)-1]); err == nil {
		t.Errorf("decodeRows(truncated) = nil error; want errRows")
	}
}

// TestRowsFirstEncoding: a batch stored before subject classes (value and
// reference only) still decodes, its rows of class unknown, and counts.
func TestRowsFirstEncoding(t *testing.T) {
	old := []byte{3, 'a', 'b', 'c', 1, 'r', 2, 'd', 'e', 0}
	rows, err := decodeRows(old)
	if err != nil || len(rows) != 2 {
		t.Fatalf("decodeRows(first encoding) = %v, %v; want 2 rows", rows, err)
	}
	want := []row{{value: "abc", ref: "r"}, {value: "de"}}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v; want %+v", i, rows[i], want[i])
		}
	}
	n, per, err := countClasses(old)
	if err != nil || n != 2 || per[classUnknown] != 2 {
		t.Errorf("countClasses(first encoding) = %d %v %v; want 2 unknown", n, per, err)
	}
	n, per, err = countClasses(encodeRows([]row{{value: "a", class: classVictim}, {value: "b", class: classVictim}, {value: "c", class: classSuspect}}))
	if err != nil || n != 3 || per[classVictim] != 2 || per[classSuspect] != 1 {
		t.Errorf("countClasses = %d %v %v; want 2 victims and 1 suspect", n, per, err)
	}
	if _, err := decodeRows([]byte{rowsClassed, 1, 'a', 0, 9}); err == nil {
		t.Errorf("decodeRows(class 9) = nil error; want errRows")
	}
}

// TestClassReach: suspect and unknown records answer in the open reach,
// victims and witnesses in their own; an identifier is held once per
// reach.
func TestClassReach(t *testing.T) {
	for c, want := range map[class]string{classUnknown: "open", classSuspect: "open", classVictim: "victim", classWitness: "witness"} {
		if got := c.reach(); got != want {
			t.Errorf("%v.reach() = %q; want %q", c, got, want)
		}
		got, err := parseClass(c.String())
		if err != nil || got != c {
			t.Errorf("parseClass(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := parseClass("perpetrator"); err == nil {
		t.Errorf("parseClass(perpetrator) = nil error")
	}
	if heldKey("x", classSuspect) != heldKey("x", classUnknown) || heldKey("x", classSuspect) == heldKey("x", classVictim) {
		t.Errorf("heldKey: suspect and unknown must share a key, victim must not")
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

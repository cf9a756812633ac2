package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xborder/xborder/internal/httpapi"
)

// readAll reads an input file as 'data import' does.
func readAll(t testing.TB, body []byte, fl inputFlags) ([]httpapi.Row, []httpapi.InvalidRow, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	rd, err := openRows(path, fl)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.close()
	var rows []httpapi.Row
	var bad []httpapi.InvalidRow
	err = rd.batches(func(r []httpapi.Row, b []httpapi.InvalidRow, _ int64) error {
		rows = append(rows, r...)
		bad = append(bad, b...)
		return nil
	})
	return rows, bad, err
}

func TestReadRows(t *testing.T) {
	tests := []struct {
		name, in string
		fl       inputFlags
		values   []string
		lines    []int
		bad      []int
	}{
		{"csv by kind", "id,phone\n1,+441\n2,+442\n", inputFlags{kind: "phone"}, []string{"+441", "+442"}, []int{2, 3}, nil},
		{"csv one column", "whatever\na\n\nb\n", inputFlags{kind: "email"}, []string{"a", "b"}, []int{2, 4}, nil},
		{"csv column flag", "x,msisdn\n1,a\n2\n", inputFlags{kind: "phone", column: "MSISDN"}, []string{"a"}, []int{2}, []int{3}},
		{"csv quoted newline", "value\n\"a\nb\"\nc\n", inputFlags{kind: "phone"}, []string{"a\nb", "c"}, []int{2, 4}, nil},
		{"json lines", "{\"email\":\"a\"}\n\n{\"value\":\"b\"}\n[1]\n", inputFlags{kind: "email"}, []string{"a", "b"}, []int{1, 3}, []int{4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, bad, err := readAll(t, []byte(tc.in), tc.fl)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(rows) != len(tc.values) {
				t.Fatalf("rows = %+v; want values %q", rows, tc.values)
			}
			for i, r := range rows {
				if r.Value != tc.values[i] || r.Line != tc.lines[i] {
					t.Errorf("row %d = %+v; want %q on line %d", i, r, tc.values[i], tc.lines[i])
				}
			}
			if len(bad) != len(tc.bad) {
				t.Fatalf("invalid = %+v; want lines %v", bad, tc.bad)
			}
			for i, b := range bad {
				if b.Line != tc.bad[i] {
					t.Errorf("invalid %d on line %d; want %d", i, b.Line, tc.bad[i])
				}
			}
		})
	}
}

func FuzzReadRows(f *testing.F) {
	f.Add([]byte("phone,ref\n+441,a\n\"x\n"), "")
	f.Add([]byte("{\"phone\":\"a\",\"ref\":\"r\"}\n{bad\n"), "ref")
	f.Add([]byte("\ufeffvalue\n1\n"), "")
	f.Fuzz(func(t *testing.T, in []byte, ref string) {
		rows, bad, err := readAll(t, in, inputFlags{kind: "phone", refColumn: ref})
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Line < 1 {
				t.Fatalf("row %+v without a line", r)
			}
		}
		for _, b := range bad {
			if b.Line < 1 || b.Reason == "" {
				t.Fatalf("invalid row %+v without a line or reason", b)
			}
		}
	})
}

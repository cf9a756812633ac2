package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// importServer is a node API that answers import calls: the rows call
// fails with 503 (no quorum) fail times, then stores every row.
type importServer struct {
	mu       sync.Mutex
	fail     int
	calls    int
	stored   int
	commited bool
}

func (s *importServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/v1/data/imports":
		json.NewEncoder(w).Encode(httpapi.Import{ID: "i1", Kind: "phone"})
	case strings.HasSuffix(r.URL.Path, "/rows"):
		s.calls++
		if s.fail > 0 {
			s.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(httpapi.ErrorBody{Error: "import rows: put record: ledger has no quorum", Code: "unavailable"})
			return
		}
		var rows []httpapi.Row
		if err := json.NewDecoder(r.Body).Decode(&rows); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.stored += len(rows)
		json.NewEncoder(w).Encode(httpapi.ImportRowsResult{Stored: len(rows)})
	case strings.HasSuffix(r.URL.Path, "/commit"):
		s.commited = true
		json.NewEncoder(w).Encode(httpapi.ImportResult{ID: "i1", Kind: "phone", Imported: s.stored, Epoch: 1, Version: 1})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// TestImportRetriesUnavailable: a batch that finds the node unavailable
// is sent again (a line on stderr each time) and counted once; after
// importRetries retries the import gives up with exit 4 and no commit.
func TestImportRetriesUnavailable(t *testing.T) {
	defer func(d time.Duration) { importBackoff = d }(importBackoff)
	importBackoff = time.Millisecond
	var csv strings.Builder
	csv.WriteString("phone\n")
	for i := range 7000 { // two batches
		fmt.Fprintf(&csv, "+4477009%05d\n", i)
	}
	in := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(in, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		fail    int
		code    int
		retries int
		stdout  string
	}{
		{"503 once", 1, exitOK, 1, "imported 7000 phone identifiers"},
		{"503 until retries run out", 100, exitUnavailable, importRetries, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &importServer{fail: tc.fail}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			var stdout, stderr strings.Builder
			code := run(context.Background(), []string{"data", "import", "--kind", "phone", "--api", ts.URL, "--token-file", tok, in},
				strings.NewReader(""), &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d; want %d\nstderr: %s", code, tc.code, stderr.String())
			}
			// Two batches are in flight: when every call fails, each of
			// them may have been retried before the import gave up.
			if got := strings.Count(stderr.String(), "sending it again"); got < tc.retries || got > 2*tc.retries {
				t.Errorf("%d retry lines on stderr; want %d (at most %d with both batches failing):\n%s", got, tc.retries, 2*tc.retries, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q; want %q", stdout.String(), tc.stdout)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if tc.code == exitOK && (srv.stored != 7000 || !srv.commited) {
				t.Errorf("node stored %d rows, committed %v; want 7000, true", srv.stored, srv.commited)
			}
			if tc.code != exitOK {
				if srv.commited {
					t.Errorf("a failed import was committed")
				}
				if !strings.Contains(stderr.String(), "xborder: hint: the batch failed") {
					t.Errorf("stderr has no hint:\n%s", stderr.String())
				}
			}
		})
	}
}

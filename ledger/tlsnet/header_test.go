package tlsnet

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHeader(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		wantErr error
	}{
		{"xbt1\x05audit", "audit", nil},
		{"xbt1\x09audit/fwdTRAILING", "audit/fwd", nil},
		{"", "", io.ErrUnexpectedEOF},
		{"xb", "", io.ErrUnexpectedEOF},
		{"xbt1", "", io.ErrUnexpectedEOF},
		{"xbt1\x05aud", "", io.ErrUnexpectedEOF},
		{"xbt2\x05audit", "", errBadHeader},
		{"GET / HTTP/1.1", "", errBadHeader},
		{"xbt1\x00", "", errBadHeader},
		{"xbt1\x41" + strings.Repeat("a", 65), "", errBadHeader},
		{"xbt1\x05AUDIT", "", errBadHeader},
		{"xbt1\x05au\x00it", "", errBadHeader},
	}
	for _, tc := range tests {
		name, n, err := parseHeader([]byte(tc.in))
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("parseHeader(%q) = %q, %d, %v; want %v", tc.in, name, n, err, tc.wantErr)
			}
		} else if err != nil || name != tc.name || n != 5+len(tc.name) {
			t.Errorf("parseHeader(%q) = %q, %d, %v; want %q, %d", tc.in, name, n, err, tc.name, 5+len(tc.name))
		}
		// readHeader agrees, and never reads past the header.
		r := strings.NewReader(tc.in)
		got, err := readHeader(r)
		if tc.wantErr == nil {
			if err != nil || got != tc.name || r.Len() != len(tc.in)-n {
				t.Errorf("readHeader(%q) = %q, %v, %d bytes left; want %q, nil, %d", tc.in, got, err, r.Len(), tc.name, len(tc.in)-n)
			}
		} else if err == nil {
			t.Errorf("readHeader(%q) = %q; want an error", tc.in, got)
		}
	}
	if _, err := appendHeader(nil, "Bad Name"); !errors.Is(err, errBadHeader) {
		t.Errorf("appendHeader(bad name) = %v; want errBadHeader", err)
	}
}

// FuzzHeader checks that the decoder never panics, that what it accepts is
// exactly what the encoder makes, and that readHeader agrees with it.
func FuzzHeader(f *testing.F) {
	for _, ch := range channels {
		b, err := appendHeader(nil, ch)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("xbt1\x00"))
	f.Add([]byte("xbt1\xffaaaa"))
	f.Add([]byte("\x16\x03\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, n, err := parseHeader(b)
		rname, rerr := readHeader(bytes.NewReader(b))
		if err != nil {
			if n != 0 || name != "" {
				t.Fatalf("parseHeader(%q) = %q, %d with error %v", b, name, n, err)
			}
			if rerr == nil {
				t.Fatalf("readHeader(%q) = %q; parseHeader said %v", b, rname, err)
			}
			return
		}
		if rerr != nil || rname != name {
			t.Fatalf("readHeader(%q) = %q, %v; parseHeader said %q", b, rname, rerr, name)
		}
		enc, err := appendHeader(nil, name)
		if err != nil {
			t.Fatalf("appendHeader(%q) after a successful parse: %v", name, err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("appendHeader(parseHeader(%q)) = %q; want %q", b, enc, b[:n])
		}
	})
}

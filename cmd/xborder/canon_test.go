package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/xborder/xborder/ident"
)

// inputLines counts the lines of data as canon must: every \n ends one, and
// bytes after the last \n make one more.
func inputLines(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return n
}

// FuzzCanon feeds canon arbitrary files: it must write exactly one line per
// input line, numbered in order, in both output formats.
func FuzzCanon(f *testing.F) {
	f.Add([]byte("020 7946 0958\n+44 20 7946 0958\r\n\nbad\n"), uint8(1), false)
	f.Add([]byte("a@b.com"), uint8(2), true)
	f.Add([]byte("\r\n\r\n"), uint8(6), true)
	f.Add([]byte(strings.Repeat("9", 70000)+"\nGB82 WEST 1234 5698 7654 32\n"), uint8(5), false)
	f.Add([]byte("GB:1\xff\n\x00\n"), uint8(7), true)
	f.Fuzz(func(t *testing.T, data []byte, kb uint8, jsonOut bool) {
		k := ident.Kinds()[int(kb)%len(ident.Kinds())]
		var out bytes.Buffer
		lines, bad, _, err := canon(context.Background(), bytes.NewReader(data), &out, io.Discard, k, ident.Options{Region: "GB"}, jsonOut)
		if err != nil {
			t.Fatalf("canon: %v", err)
		}
		want := inputLines(data)
		got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if out.Len() == 0 {
			got = nil
		}
		if lines != want || len(got) != want {
			t.Fatalf("canon read %d lines and wrote %d; want %d", lines, len(got), want)
		}
		nbad := 0
		for i, l := range got {
			if jsonOut {
				var o canonLine
				if err := json.Unmarshal([]byte(l), &o); err != nil || o.Line != i+1 || (o.Canonical == "") == (o.Error == "") {
					t.Fatalf("output line %d = %q, %v; want one JSON object for line %d", i+1, l, err, i+1)
				}
				if o.Error != "" {
					nbad++
				}
				continue
			}
			if strings.HasPrefix(l, "error: line ") {
				nbad++
				if !strings.HasPrefix(l, "error: line "+strconv.Itoa(i+1)+": ") {
					t.Fatalf("output line %d = %q; want its own line number", i+1, l)
				}
			}
		}
		if nbad != bad {
			t.Fatalf("canon counted %d invalid lines, wrote %d", bad, nbad)
		}
	})
}

// TestCanonStops checks that canon stops between lines once its context is
// done (Ctrl-C during a long file).
func TestCanonStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	lines, _, _, err := canon(ctx, strings.NewReader("020 7946 0958\n"), &out, io.Discard, ident.Phone, ident.Options{Region: "GB"}, false)
	if !errors.Is(err, context.Canceled) || lines != 0 || out.Len() != 0 {
		t.Errorf("canon(cancelled) = %d lines, %q, %v; want 0 lines and context.Canceled", lines, out.String(), err)
	}
}

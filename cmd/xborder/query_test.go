package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

func TestQueryExit(t *testing.T) {
	for _, tc := range []struct {
		outcomes []string
		want     int
	}{
		{[]string{httpapi.OutcomeHits, httpapi.OutcomeNoHits}, exitOK},
		{[]string{httpapi.OutcomeHits, httpapi.OutcomeDenied}, exitDenied},
		{[]string{httpapi.OutcomeDenied, httpapi.OutcomeUnavailable}, exitUnavailable},
		{[]string{httpapi.OutcomeStale}, exitUnavailable},
		{[]string{httpapi.OutcomeUnavailable, httpapi.OutcomeFailed, httpapi.OutcomeHits}, exitVerify},
	} {
		var res httpapi.QueryResult
		for _, o := range tc.outcomes {
			res.Partners = append(res.Partners, httpapi.PartnerResult{Outcome: o})
		}
		if got := queryExit(res); got != tc.want {
			t.Errorf("queryExit(%v) = %d; want %d", tc.outcomes, got, tc.want)
		}
	}
}

// FuzzReadQueryFile feeds arbitrary files to the query's reader: it never
// panics, and it either refuses the file or returns one canonical value
// per line, each with its line.
func FuzzReadQueryFile(f *testing.F) {
	for _, s := range []string{"07700 900101\n+44 7700 900202\n", "x\n", "", "\r\n\r\n", "+447700900101", strings.Repeat("9", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(data), stdout: &bytes.Buffer{}, stderr: &stderr}
		var req httpapi.QueryRequest
		lines, err := readQueryFile(context.Background(), e, "-", ident.Phone, ident.Options{Region: "GB"}, &req)
		if err != nil {
			return
		}
		if len(lines) != len(req.Values) || len(lines) == 0 {
			t.Fatalf("%d lines for %d values", len(lines), len(req.Values))
		}
		for i, v := range req.Values {
			if c, err := ident.Canonical(ident.Phone, v, ident.Options{}); err != nil || c != v {
				t.Fatalf("value %d %q is not canonical: %q, %v", i, v, c, err)
			}
		}
	})
}

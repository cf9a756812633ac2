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

// TestQueryOutputReaches: a victim or witness hit is shown as such, with
// the partner's handling code and instruction, in text; --json has the
// reach of every hit.
func TestQueryOutputReaches(t *testing.T) {
	res := httpapi.QueryResult{ID: "q-1", Kind: "phone", Values: 3, PaddedSize: 4, Mode: "safeguarding",
		Partners: []httpapi.PartnerResult{{Agency: "TH", Outcome: httpapi.OutcomeHits, HitCount: 2,
			Hits: []int{0, 2}, HitReaches: []string{"open", "victim"}, Handling: "H3",
			Instruction: "contact the victim liaison; do not use for enforcement"}}}
	lines := []queryLine{{1, "+66812345601"}, {2, "+66812345602"}, {3, "+66812345603"}}
	var text bytes.Buffer
	if err := writeQueryText(&text, res, lines); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"padded to 4, safeguarding mode\n",
		"hit TH line 1: +66812345601\n",
		"hit TH line 3: +66812345603: TH holds it as a victim's: for the victim's care, never for enforcement; handling H3\n",
		"TH asks, for its victim and witness hits: contact the victim liaison; do not use for enforcement\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := writeQueryJSON(&js, res, lines); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"mode": "safeguarding"`, `"line": 1,`, `"reach": "open"`, `"line": 3,`, `"reach": "victim"`, `"handling": "H3"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON output lacks %s:\n%s", want, js.String())
		}
	}
	if strings.Contains(js.String(), "hit_reaches") {
		t.Errorf("JSON output repeats hit_reaches beside the hits:\n%s", js.String())
	}
	// An enforcement answer (no reaches from the node) says nothing of care.
	res.Mode, res.Partners[0].HitReaches, res.Partners[0].Handling, res.Partners[0].Instruction = "", nil, "", ""
	text.Reset()
	if err := writeQueryText(&text, res, lines); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "enforcement mode") || strings.Contains(text.String(), "care") {
		t.Errorf("enforcement text output:\n%s", text.String())
	}
}

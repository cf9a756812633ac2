package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xborder/xborder/internal/httpapi"
)

// TestQueryPartnersRefuseKind: when the partners this node's policy lists
// for a kind refuse to sync it to this agency (their policies do not let
// it ask that kind), the node reports denials (kind_not_allowed); the CLI
// says what is wrong and what to do, and exits 3 (denied), not 4 with
// nothing on stderr. Any other all-denied query also says so on stderr.
func TestQueryPartnersRefuseKind(t *testing.T) {
	refusal := func(cc string) httpapi.PartnerResult {
		return httpapi.PartnerResult{Agency: cc, RequestID: "r-" + cc, Outcome: httpapi.OutcomeDenied, Reason: "kind_not_allowed"}
	}
	tests := []struct {
		name     string
		partners []httpapi.PartnerResult
		code     int
		stderr   []string
		stdout   []string
	}{
		{"every partner refuses", []httpapi.PartnerResult{refusal("DE"), refusal("GB")}, exitDenied,
			[]string{"xborder: error: query: no partner asked lets this agency ask iban: DE (kind_not_allowed), GB (kind_not_allowed) refused",
				"xborder: hint: your policy lists them for iban, their policies do not"},
			[]string{"DE       denied", "GB       denied"}},
		{"one refuses, one answers", []httpapi.PartnerResult{refusal("DE"), {Agency: "NL", Outcome: httpapi.OutcomeHits, HitCount: 1, Hits: []int{0}}},
			exitDenied, nil, []string{"DE       denied", "kind_not_allowed", "hit NL line 1"}},
		{"every partner denies, for other reasons", []httpapi.PartnerResult{refusal("DE"),
			{Agency: "GB", Outcome: httpapi.OutcomeDenied, Reason: "partner_budget\nsecond line"}}, exitDenied,
			[]string{"xborder: error: query: every partner part was denied: DE (kind_not_allowed), GB (partner_budget)",
				"xborder: hint: the table above gives each partner's reason"},
			[]string{"DE       denied", "GB       denied"}},
		{"a partner unreachable", []httpapi.PartnerResult{{Agency: "DE", Outcome: httpapi.OutcomeUnavailable, Reason: "no copy of the partner's set: dial DE: refused"}},
			exitUnavailable, nil, []string{"DE       unavailable", "dial DE: refused"}},
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "ibans.txt")
	if err := os.WriteFile(in, []byte("GB82 WEST 1234 5698 7654 32\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "tok")
	if err := os.WriteFile(tok, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/queries" {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				json.NewEncoder(w).Encode(httpapi.QueryResult{ID: "q-1", Status: "done", Kind: "iban", Values: 1, PaddedSize: 1,
					Partners: tc.partners})
			}))
			defer ts.Close()
			var stdout, stderr strings.Builder
			code := run(context.Background(), []string{"query", "--kind", "iban", "--case", "C-1", "--basis", "b", "--offence", "thb",
				"--api", ts.URL, "--token-file", tok, in}, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d; want %d\nstderr: %s", code, tc.code, stderr.String())
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q; want %q in it", stderr.String(), want)
				}
			}
			if len(tc.stderr) == 0 && stderr.Len() != 0 {
				t.Errorf("stderr %q; want nothing (the table says it)", stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout %q; want %q in it", stdout.String(), want)
				}
			}
			if strings.Contains(stdout.String(), "second line") {
				t.Errorf("stdout shows more than the first line of a reason:\n%s", stdout.String())
			}
		})
	}
}

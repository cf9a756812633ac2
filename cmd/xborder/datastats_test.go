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

// TestDataStatsFullSet: data stats says which sets are at their largest
// size and what to do.
func TestDataStatsFullSet(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/data/stats" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(httpapi.DataStats{Epoch: 1, Kinds: []httpapi.KindStats{
			{Kind: "email", Rows: 5, Epoch: 1, Versions: 1, Built: 1, Entries: 896},
			{Kind: "phone", Rows: 210, Epoch: 1, Versions: 3, Built: 1, Entries: 896, Full: true},
		}})
	}))
	defer ts.Close()
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"data", "stats", "--api", ts.URL, "--token-file", tok},
		strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, stderr.String())
	}
	want := "phone: the set of epoch 1 is at its largest size (14,680,064 identifiers): 2 of 3 versions are not in it and are not matched"
	if !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout:\n%s\nwant the line %q", stdout.String(), want)
	}
	if strings.Contains(stdout.String(), "email: the set") {
		t.Errorf("stdout calls a set full that is not:\n%s", stdout.String())
	}
}

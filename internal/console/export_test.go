package console

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"path"
	"testing"
	"testing/fstest"

	"github.com/xborder/xborder/ledger/format"
)

// TestExportVerifies: the auditor's export is a zip of an export
// directory that the offline verifier (format.Verify, as `xborder ledger
// verify` runs it) accepts; without the CSRF token, or for another role,
// it is refused.
func TestExportVerifies(t *testing.T) {
	h := newHarness(t, false, false)
	ada := h.client(t)
	tok := h.session(t, ada, "ada")
	if resp, _ := h.do(t, ada, http.MethodPost, "/ui/export", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("export without a CSRF token = %d; want 403", resp.StatusCode)
	}
	ivy := h.client(t)
	itok := h.session(t, ivy, "ivy")
	if resp, _ := h.do(t, ivy, http.MethodPost, "/ui/export", url.Values{"csrf": {itok}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("export as the investigator = %d; want 403", resp.StatusCode)
	}
	resp, body := h.do(t, ada, http.MethodPost, "/ui/export", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("export = %d %s; want 200 application/zip", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	zr, err := zip.NewReader(bytes.NewReader([]byte(body)), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		fsys[path.Base(f.Name)] = &fstest.MapFile{Data: b}
	}
	rep, err := format.Verify(fsys, h.fake.LedgerKey, nil)
	if err != nil {
		t.Fatalf("format.Verify of the console's export: %v", err)
	}
	if want := uint64(len(h.fake.Ledger())); rep.Size != want || rep.Bodies != want {
		t.Fatalf("export verified %d entries (%d bodies); want %d", rep.Size, rep.Bodies, want)
	}
}

package wire

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestGolden freezes the encoding of every message: a change here is a
// change of the wire protocol and needs a new protocol ID.
func TestGolden(t *testing.T) {
	var b strings.Builder
	for _, m := range []struct {
		name string
		enc  []byte
	}{
		{"match request", sampleRequest().Marshal()},
		{"match request signed bytes", sampleRequest().SignedBytes()},
		{"match answer", sampleAnswer().Marshal()},
		{"match answer signed bytes", sampleAnswer().SignedBytes()},
		{"sync request", sampleSyncRequest().Marshal()},
		{"sync answer", sampleSyncAnswer().Marshal()},
		{"segment", sampleSegment().Marshal()},
		{"segment signed bytes", sampleSegment().SignedBytes()},
	} {
		fmt.Fprintf(&b, "%s\n%s\n", m.name, hex.EncodeToString(m.enc))
	}
	path := filepath.Join("testdata", "messages.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got := b.String(); got != string(want) {
		t.Fatalf("encodings differ from %s:\n%s\nwant:\n%s", path, got, want)
	}
}

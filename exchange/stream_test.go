package exchange

import (
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"testing"
	"time"
)

func TestProtocolIDs(t *testing.T) {
	versioned := regexp.MustCompile(`^/xborder/[a-z]+/[0-9]+\.[0-9]+\.[0-9]+$`)
	ids := map[string]string{"match": ProtoMatch, "sync": ProtoSync}
	seen := make(map[string]bool)
	for name, id := range ids {
		if !versioned.MatchString(id) {
			t.Errorf("protocol %s = %q; want /xborder/NAME/MAJOR.MINOR.PATCH", name, id)
		}
		if seen[id] {
			t.Errorf("protocol %s = %q is used twice", name, id)
		}
		seen[id] = true
	}
}

// pipeStream is the in-memory Stream that exchange's protocol tests use: a
// net.Conn half of net.Pipe with CloseWrite and Reset.
type pipeStream struct{ net.Conn }

func (p pipeStream) CloseWrite() error { return p.Conn.Close() }
func (p pipeStream) Reset() error      { return p.Conn.Close() }

var _ Stream = pipeStream{}

func TestStreamDeadline(t *testing.T) {
	a, b := net.Pipe()
	sa, sb := pipeStream{a}, pipeStream{b}
	defer sa.Close()
	defer sb.Close()

	if err := sa.SetDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatalf("SetDeadline: %v", err)
	}
	buf := make([]byte, 1)
	if _, err := sa.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: err = %v; want os.ErrDeadlineExceeded", err)
	}

	if err := sa.SetDeadline(time.Time{}); err != nil {
		t.Fatalf("SetDeadline(zero): %v", err)
	}
	go func() {
		_, _ = sb.Write([]byte("x"))
		_ = sb.CloseWrite()
	}()
	got, err := io.ReadAll(sa)
	if err != nil || string(got) != "x" {
		t.Fatalf("ReadAll = %q, %v; want \"x\", nil", got, err)
	}
}

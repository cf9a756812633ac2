package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/xborder/xborder/exchange"
)

// TestLogReceivedUnavailable: a sync that a partner's replica could not
// serve (unavailable) is logged with the replica, as answers and denials
// are, so that testnet chaos can tell a replica that answered unavailable
// from one that was not asked (docs/RELIABILITY.md).
func TestLogReceivedUnavailable(t *testing.T) {
	var buf bytes.Buffer
	ps := &partnerSets{log: slog.New(slog.NewTextHandler(&buf, nil))}
	ps.logReceived("GB", "email", "", 3, "12D3KooWpeer", nil, fmt.Errorf("sync GB: %w", exchange.ErrUnavailable))
	ps.logReceived("GB", "email", "", 3, "12D3KooWother", nil, errors.New("answer does not verify"))
	out := buf.String()
	if n := strings.Count(out, logSyncUnavailable); n != 1 {
		t.Fatalf("%d lines %q; want 1 for the unavailable answer:\n%s", n, logSyncUnavailable, out)
	}
	for _, want := range []string{"partner=GB", "kind=email", "epoch=3", "replica=12D3KooWpeer", "answered=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("the line lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "12D3KooWother") {
		t.Errorf("an answer that does not verify is logged as unavailable:\n%s", out)
	}
}

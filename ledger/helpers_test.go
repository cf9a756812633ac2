package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/ledger/format"
)

var testKey = ed25519.NewKeyFromSeed(sha256.New().Sum([]byte("xborder ledger test key"))[:32])

// clock is an injectable clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func testConfig(dir string) Config {
	return Config{Dir: dir, ReplicaID: "r1", Agency: "GB", Signer: testKey, Bootstrap: true}
}

func open(t testing.TB, cfg Config) *Ledger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Dir, err)
	}
	return l
}

func entry(i int) Entry {
	return Entry{
		Header: Header{Type: TypeMatchOut, RequestID: fmt.Sprintf("req-%d", i), Partner: "FR", Kind: "phone",
			PaddedSize: 1024, Outcome: OutcomeOK, PolicyVersion: "p1"},
		Body: Body{Actor: "officer-7", Purpose: "trafficking case", LegalBasis: "art. 12", CaseRef: fmt.Sprintf("case-%d", i%5)},
	}
}

func appendN(t testing.TB, l *Ledger, from, n int) []Receipt {
	t.Helper()
	var rs []Receipt
	for i := from; i < from+n; i++ {
		r, err := l.Append(context.Background(), entry(i))
		if err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		rs = append(rs, r)
	}
	return rs
}

type ed25519PublicKey = ed25519.PublicKey

var testKey2 = ed25519.NewKeyFromSeed(sha256.New().Sum([]byte("another agency"))[:32])

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openRetained opens a ledger with a year's retention on a clock set to
// 2020-01-01, which it returns with the time it was set to.
func openRetained(t *testing.T) (*Ledger, Config, *clock, time.Time) {
	t.Helper()
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(t0)
	cfg := testConfig(t.TempDir())
	cfg.Now = clk.Now
	cfg.Retention = 365 * 24 * time.Hour
	return open(t, cfg), cfg, clk, t0
}

func exportLedger(t *testing.T, l *Ledger) string {
	t.Helper()
	out := t.TempDir()
	if _, err := l.Export(context.Background(), out, "auditor-1"); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return out
}

// jsonMarshal encodes a command as JSON, as logs written before the binary
// encoding hold them.
func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// verifyExport checks the export directory dir with format.Verify.
func verifyExport(dir, verifierKey string, trusted []byte) (*format.Report, error) {
	return format.Verify(os.DirFS(dir), verifierKey, trusted)
}

package testnet

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// TestAnswersRecorded runs the check of the answers a partner received
// against the sender's ledger: sync answers and denials as a querier's
// replica logged them (through log/slog's text handler, as node run
// writes them), and match denials as the querier's query results name
// them.
func TestAnswersRecorded(t *testing.T) {
	start := time.Now().Add(-time.Minute)
	// GB's final ledger: TH synced email epoch 2 up to version 3, and a
	// sync of epoch 1 refused (unknown_epoch); request d1 denied.
	gbLedger := ledgerOf{lines: []format.ExportLine{
		{Index: 1, Header: format.Header{Type: format.TypeSync, Kind: "email", Epoch: 2, SetVersion: 3}, Body: &format.Body{Purpose: "encoded set built"}},
		{Index: 2, Header: format.Header{Type: format.TypeSync, Partner: "TH", Kind: "email", Epoch: 2, SetVersion: 3}, Body: &format.Body{Purpose: "sync served"}},
		{Index: 3, Header: format.Header{Type: format.TypeDenial, Partner: "TH", Kind: "email", Epoch: 1, RequestID: "s1"}, Body: &format.Body{Purpose: "sync refused: unknown_epoch"}},
		{Index: 4, Header: format.Header{Type: format.TypeDenial, Partner: "TH", Kind: "phone", RequestID: "d1"}},
	}}
	thLedger := ledgerOf{lines: []format.ExportLine{
		{Index: 1, Header: format.Header{Type: format.TypeMatchOut, Partner: "GB", Kind: "phone", RequestID: "d1"}},
		{Index: 2, Header: format.Header{Type: format.TypeMatchOut, Partner: "GB", Kind: "phone", RequestID: "d2"}},
		{Index: 3, Header: format.Header{Type: format.TypeDenial, Partner: "GB", Kind: "phone", RequestID: "d3"}},
	}}
	denied := func(id int, rid string) *Op {
		return &Op{ID: id, Agency: "TH", Kind: "query", Outcome: OpOK,
			Partners: []httpapi.PartnerResult{{Agency: "GB", RequestID: rid, Outcome: httpapi.OutcomeDenied, Reason: "unknown_epoch"}}}
	}
	received := func(log *slog.Logger, version uint32) {
		log.Info(logSyncReceived, "partner", "GB", "kind", "email", "epoch", uint64(2), "version", version, "segments", 1, "request", "00ff")
	}
	refused := func(log *slog.Logger, reason string) {
		log.Info(logSyncDenied, "partner", "GB", "kind", "email", "epoch", uint64(1), "reason", reason)
	}
	for _, tc := range []struct {
		name  string
		log   func(*slog.Logger)
		ops   []*Op
		fails string // "" when the check passes; else in its evidence
		says  string // in the report, when set
	}{
		{"every answer recorded", func(l *slog.Logger) { received(l, 3); refused(l, "unknown_epoch") }, []*Op{denied(1, "d1")}, "", ""},
		{"a local denial is not the partner's", func(l *slog.Logger) {}, []*Op{denied(1, "d3")}, "", ""},
		{"sync answer without its entry", func(l *slog.Logger) { received(l, 4) }, nil, "up to version 4 at", ""},
		{"sync denial without its entry", func(l *slog.Logger) { refused(l, "kind_not_allowed") }, nil, "(kind_not_allowed)", ""},
		{"match denial without its entry", func(l *slog.Logger) {}, []*Op{denied(1, "d2")}, "holds no denial under it", ""},
		{"unavailable syncs: nothing to record, counted", func(l *slog.Logger) {
			l.Info(logSyncUnavailable, "partner", "GB", "kind", "email", "epoch", uint64(2), "replica", "12D3KooWx", "answered", true)
			l.Info(logSyncUnavailable, "partner", "GB", "kind", "email", "epoch", uint64(2), "replica", "12D3KooWy", "answered", false)
		}, nil, "", "1 syncs answered unavailable (nothing to record), 1 replicas not reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "TH-r1.log")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(f, nil)).With("component", "sync")
			log.Info("a line of another component", "partner", "GB")
			tc.log(log)
			f.Close()
			net := &Net{Agencies: []*AgencyNode{{Agency: Agency{Code: "GB"}, Replicas: []*Replica{{ID: "r1"}}},
				{Agency: Agency{Code: "TH"}, Replicas: []*Replica{{ID: "r1", Log: path}}}}}
			net.Agencies[0].Replicas[0].Log = filepath.Join(dir, "GB-r1.log")
			os.WriteFile(net.Agencies[0].Replicas[0].Log, nil, 0o644)
			var out bytes.Buffer
			c := &checker{net: net, rep: NewReport(&out), ops: tc.ops, start: start,
				last: map[string]ledgerOf{"GB": gbLedger, "TH": thLedger},
				final: finalState{exports: map[string][]*Op{
					"GB": {{Kind: "export", Outcome: OpOK, Invoke: float64(2 * time.Minute / time.Millisecond)}},
					"TH": {{Kind: "export", Outcome: OpOK, Invoke: float64(2 * time.Minute / time.Millisecond)}}}}}
			c.answersRecorded()
			_, failed := c.rep.Counts()
			switch {
			case tc.fails == "" && failed > 0:
				t.Errorf("check failed on a history where every answer is recorded:\n%s", out.String())
			case tc.fails != "" && failed == 0:
				t.Errorf("check passed; want a failure naming %q:\n%s", tc.fails, out.String())
			case tc.fails != "" && !strings.Contains(out.String(), tc.fails):
				t.Errorf("the failure does not name %q:\n%s", tc.fails, out.String())
			case !strings.Contains(out.String(), tc.says):
				t.Errorf("the report does not say %q:\n%s", tc.says, out.String())
			}
		})
	}
}

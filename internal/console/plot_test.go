package console

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/ledger"
)

// TestPlots: the charts are well-formed SVG with a title and description
// for screen readers, and their tables hold the numbers drawn.
func TestPlots(t *testing.T) {
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var es []ledger.Entry
	add := func(d int, typ ledger.Type, partner string, hits uint64) {
		var e ledger.Entry
		e.Index, e.Time, e.Type, e.Partner, e.HitCount = uint64(len(es)), day.AddDate(0, 0, d), typ, partner, hits
		es = append(es, e)
	}
	add(0, ledger.TypeMatchResult, "TH", 2)
	add(0, ledger.TypeMatchResult, "FR", 0)
	add(1, ledger.TypeMatchResult, "TH", 1)
	add(1, ledger.TypeMatchOut, "TH", 0)
	add(1, ledger.TypeMatchResult, "TH", 3)
	q, h := partnerPlots(es)
	tests := []struct {
		p     plot
		table map[string]string
	}{
		{perDayPlot(es), map[string]string{"2026-12-01": "2", "2026-12-02": "3"}},
		{growthPlot(es), map[string]string{"2026-12-01": "2", "2026-12-02": "5"}},
		{q, map[string]string{"2026-12-01 TH": "1", "2026-12-01 FR": "1", "2026-12-02 TH": "2", "2026-12-02 FR": "0"}},
		{h, map[string]string{"2026-12-01 TH": "2", "2026-12-01 FR": "0", "2026-12-02 TH": "4"}},
		{perDayPlot(nil), map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.p.Title, func(t *testing.T) {
			d := xml.NewDecoder(strings.NewReader(string(tt.p.SVG)))
			for {
				_, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: SVG is not well-formed: %v", tt.p.Title, err)
				}
			}
			svg := string(tt.p.SVG)
			if !strings.Contains(svg, `role="img"`) || !strings.Contains(svg, "<title id=") || !strings.Contains(svg, "<desc id=") {
				t.Errorf("%s: SVG without role, title or desc", tt.p.Title)
			}
			got := map[string]string{}
			for _, r := range tt.p.Table {
				got[r[0]] = r[1]
			}
			for k, want := range tt.table {
				if got[k] != want {
					t.Errorf("%s: table[%s] = %q; want %q", tt.p.Title, k, got[k], want)
				}
			}
		})
	}
}

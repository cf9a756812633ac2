package console

import (
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
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

// TestMeters: each budget is one bar whose filled width is its share of
// the limit, capped at the limit, drawn in the warning colour from 90%;
// the chart is well-formed SVG with a title and a description.
func TestMeters(t *testing.T) {
	ms := []meter{{"TH phone daily", 250, 1000}, {"TH email daily", 950, 1000}, {"phone daily cap", 3000, 1000}, {"none", 0, 0}}
	svg := string(drawMeters("Budget use today", "desc", ms))
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed: %v\n%s", err, svg)
		}
	}
	if !strings.Contains(svg, `role="img"`) || !strings.Contains(svg, `<title id="t-budget-use-today">`) || !strings.Contains(svg, "<desc id=") {
		t.Errorf("SVG without role, title or desc:\n%s", svg)
	}
	full := float64(plotW - meterLabelW - 90)
	bars := regexp.MustCompile(`<rect x="\d+" y="\d+" width="([0-9.]+)" height="16" fill="(#[0-9a-f]+)"><title>([^<]+)</title>`).FindAllStringSubmatch(svg, -1)
	if len(bars) != len(ms) {
		t.Fatalf("%d bars; want %d:\n%s", len(bars), len(ms), svg)
	}
	for i, m := range ms {
		pct := min(percent(m.Used, m.Limit), 100)
		want := fmt.Sprintf("%.1f", full*float64(pct)/100)
		colour := plotFill
		if percent(m.Used, m.Limit) >= meterWarn {
			colour = meterFull
		}
		if bars[i][1] != want || bars[i][2] != colour || !strings.HasPrefix(bars[i][3], m.Label+": ") {
			t.Errorf("bar %d (%+v) = width %s, %s, %q; want width %s, %s", i, m, bars[i][1], bars[i][2], bars[i][3], want, colour)
		}
	}
	if got := percent(3000, 1000); got != 300 {
		t.Errorf("percent(3000, 1000) = %d; want 300 (the table shows the real share)", got)
	}
}

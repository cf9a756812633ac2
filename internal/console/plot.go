package console

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/xborder/xborder/ledger"
)

// A plot is an SVG chart drawn on the server: no script, no library in
// the browser. Title and Desc label it for screen readers, and Table
// holds the same numbers as text.
type plot struct {
	Title string
	Desc  string
	SVG   template.HTML
	Table [][2]string // label, value
}

// Plot geometry, in SVG user units.
const (
	plotW, plotH         = 640, 200
	padL, padB, padT     = 48, 28, 12
	maxBars              = 60
	plotFill, plotStroke = "#2b6cb0", "#1a365d"
)

// dayCounts counts es per UTC day, days in order, the last maxBars days.
func dayCounts(es []ledger.Entry) ([]string, []int) {
	m := map[string]int{}
	for _, e := range es {
		m[e.Time.UTC().Format(time.DateOnly)]++
	}
	days := make([]string, 0, len(m))
	for d := range m {
		days = append(days, d)
	}
	slices.Sort(days)
	if len(days) > maxBars {
		days = days[len(days)-maxBars:]
	}
	n := make([]int, len(days))
	for i, d := range days {
		n[i] = m[d]
	}
	return days, n
}

// perDayPlot draws the listed entries per day as bars.
func perDayPlot(es []ledger.Entry) plot {
	days, n := dayCounts(es)
	p := plot{Title: "Entries per day", Desc: fmt.Sprintf("Bar chart of the %d entries listed, per day (UTC), over %d days.", len(es), len(days))}
	for i := range days {
		p.Table = append(p.Table, [2]string{days[i], fmt.Sprint(n[i])})
	}
	p.SVG = drawChart(p.Title, p.Desc, days, n, false)
	return p
}

// growthPlot draws the ledger's growth over the listed entries: the
// highest index recorded by the end of each day.
func growthPlot(es []ledger.Entry) plot {
	last := map[string]uint64{}
	for _, e := range es {
		d := e.Time.UTC().Format(time.DateOnly)
		last[d] = max(last[d], e.Index+1)
	}
	days := make([]string, 0, len(last))
	for d := range last {
		days = append(days, d)
	}
	slices.Sort(days)
	if len(days) > maxBars {
		days = days[len(days)-maxBars:]
	}
	n := make([]int, len(days))
	for i, d := range days {
		n[i] = int(last[d])
		if i > 0 {
			n[i] = max(n[i], n[i-1])
		}
	}
	p := plot{Title: "Ledger growth", Desc: fmt.Sprintf("Line chart of the ledger's size (entries) at the end of each of %d days (UTC), from the entries listed.", len(days))}
	for i := range days {
		p.Table = append(p.Table, [2]string{days[i], fmt.Sprint(n[i])})
	}
	p.SVG = drawChart(p.Title, p.Desc, days, n, true)
	return p
}

// drawChart draws values over labels, as bars or as a line, with a y axis
// from 0 to the highest value.
func drawChart(title, desc string, labels []string, values []int, line bool) template.HTML {
	esc := template.HTMLEscapeString
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="t-%s d-%s">`,
		plotW, plotH, plotW, plotH, idOf(title), idOf(title))
	fmt.Fprintf(&b, `<title id="t-%s">%s</title><desc id="d-%s">%s</desc>`, idOf(title), esc(title), idOf(title), esc(desc))
	x0, y0 := padL, plotH-padB
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, x0, y0, plotW-4, y0)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, x0, padT, x0, y0)
	top := 1
	for _, v := range values {
		top = max(top, v)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%d</text>`, x0-4, padT+10, top)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">0</text>`, x0-4, y0)
	if len(values) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">no entries</text>`, x0+10, y0-10)
		b.WriteString(`</svg>`)
		return template.HTML(b.String())
	}
	span := float64(plotW - 4 - x0)
	step := span / float64(len(values))
	scale := float64(y0-padT) / float64(top)
	var pts []string
	for i, v := range values {
		h := float64(v) * scale
		x := float64(x0) + float64(i)*step
		if line {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x+step/2, float64(y0)-h))
		} else {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d</title></rect>`,
				x+1, float64(y0)-h, max(step-2, 1), h, plotFill, esc(labels[i]), v)
		}
	}
	if line {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, plotStroke, strings.Join(pts, " "))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">%s</text>`, x0, plotH-8, esc(labels[0]))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, plotW-4, plotH-8, esc(labels[len(labels)-1]))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// idOf makes an element ID of a title.
func idOf(title string) string {
	return strings.ToLower(strings.ReplaceAll(title, " ", "-"))
}

// palette colours the series of a grouped chart (distinguishable in
// greyscale too, and each named in the legend and the table).
var palette = []string{"#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#718096"}

// partnerPlots draws, from the match_result entries listed (one per
// partner's answer to a query), the queries and the hits per day per
// partner.
func partnerPlots(es []ledger.Entry) (queries, hits plot) {
	type key struct{ day, partner string }
	q, h := map[key]int{}, map[key]int{}
	days, partners := map[string]bool{}, map[string]bool{}
	for _, e := range es {
		if e.Type != ledger.TypeMatchResult || e.Partner == "" {
			continue
		}
		k := key{e.Time.UTC().Format(time.DateOnly), e.Partner}
		q[k]++
		h[k] += int(e.HitCount)
		days[k.day], partners[k.partner] = true, true
	}
	ds, ps := sortedKeys(days), sortedKeys(partners)
	if len(ds) > maxBars {
		ds = ds[len(ds)-maxBars:]
	}
	if len(ps) > len(palette) {
		ps = ps[:len(palette)]
	}
	mk := func(title, what string, m map[key]int) plot {
		p := plot{Title: title, Desc: fmt.Sprintf("Grouped bar chart of the %s per day (UTC) for each of %d partners (%s), from the match_result entries listed.", what, len(ps), strings.Join(ps, ", "))}
		vals := make([][]int, len(ps))
		for i, pa := range ps {
			vals[i] = make([]int, len(ds))
			for j, d := range ds {
				vals[i][j] = m[key{d, pa}]
				p.Table = append(p.Table, [2]string{d + " " + pa, fmt.Sprint(vals[i][j])})
			}
		}
		p.SVG = drawGrouped(p.Title, p.Desc, ds, ps, vals)
		return p
	}
	return mk("Queries per day per partner", "queries answered", q), mk("Hits per day per partner", "hits", h)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// drawGrouped draws one group of bars per label, one bar per series, with
// a legend.
func drawGrouped(title, desc string, labels, series []string, values [][]int) template.HTML {
	esc := template.HTMLEscapeString
	id := idOf(title)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="t-%s d-%s">`,
		plotW, plotH, plotW, plotH, id, id)
	fmt.Fprintf(&b, `<title id="t-%s">%s</title><desc id="d-%s">%s</desc>`, id, esc(title), id, esc(desc))
	x0, y0 := padL, plotH-padB
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, x0, y0, plotW-4, y0)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, x0, padT, x0, y0)
	top := 1
	for _, vs := range values {
		for _, v := range vs {
			top = max(top, v)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%d</text>`, x0-4, padT+10, top)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">0</text>`, x0-4, y0)
	if len(labels) == 0 || len(series) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">no answers from partners listed</text>`, x0+10, y0-10)
		b.WriteString(`</svg>`)
		return template.HTML(b.String())
	}
	group := float64(plotW-4-x0) / float64(len(labels))
	bar := max((group-2)/float64(len(series)), 1)
	scale := float64(y0-padT) / float64(top)
	for j := range labels {
		for i, s := range series {
			v := values[i][j]
			hgt := float64(v) * scale
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
				float64(x0)+float64(j)*group+1+float64(i)*bar, float64(y0)-hgt, bar, hgt, palette[i], esc(labels[j]), esc(s), v)
		}
	}
	for i, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`,
			plotW-60, padT+i*14, palette[i], plotW-46, padT+i*14+9, esc(s))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">%s</text>`, x0, plotH-8, esc(labels[0]))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, plotW-4, plotH-8, esc(labels[len(labels)-1]))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

package console

import (
	"fmt"
	"html/template"
	"strings"
)

// A meter is one horizontal bar of a meter chart: used against a limit.
type meter struct {
	Label       string
	Used, Limit int64
}

// Geometry of a meter chart.
const (
	meterRow    = 22  // height of one bar's row
	meterLabelW = 220 // width of the labels' column
	meterWarn   = 90  // percent used from which a bar is drawn in the warning colour
	meterFull   = "#9b2c2c"
)

// drawMeters draws each meter as a bar whose full width is its limit and
// whose filled part is the share used (capped at the limit; the number
// beside it is the real one). The chart's height follows the meters.
func drawMeters(title, desc string, ms []meter) template.HTML {
	esc := template.HTMLEscapeString
	id := idOf(title)
	h := padT + max(len(ms), 1)*meterRow + padB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="t-%s d-%s">`,
		plotW, h, plotW, h, id, id)
	fmt.Fprintf(&b, `<title id="t-%s">%s</title><desc id="d-%s">%s</desc>`, id, esc(title), id, esc(desc))
	if len(ms) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">no budgets</text>`, padL, padT+14)
		b.WriteString(`</svg>`)
		return template.HTML(b.String())
	}
	x0, w := meterLabelW, plotW-meterLabelW-90
	for i, m := range ms {
		y := padT + i*meterRow
		pct := percent(m.Used, m.Limit)
		fill := plotFill
		if pct >= meterWarn {
			fill = meterFull
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, x0-6, y+14, esc(m.Label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="16" fill="none" stroke="#444"/>`, x0, y+2, w)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"><title>%s: %d of %d (%d%%)</title></rect>`,
			x0, y+2, float64(w)*float64(min(pct, 100))/100, fill, esc(m.Label), m.Used, m.Limit, pct)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">%d%%</text>`, x0+w+6, y+14, pct)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">0</text>`, x0, h-8)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">limit</text>`, x0+w, h-8)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// percent is used as a whole percentage of limit (100 and more when over).
func percent(used, limit int64) int {
	if limit <= 0 {
		if used > 0 {
			return 100
		}
		return 0
	}
	return int(used * 100 / limit)
}

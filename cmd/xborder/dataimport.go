package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/xborder/xborder/internal/httpapi"
)

// importRetries is how often 'data import' sends a batch again that found
// the node unavailable (HTTP 503: no quorum within the node's write bound,
// as on a loaded machine, or the node not reachable), waiting
// importBackoff, then twice as long each time, before it gives up with
// exit 4. The node forgets the rows of a batch it did not store, so a
// batch sent again is neither lost nor counted twice.
const importRetries = 3

var importBackoff = 2 * time.Second

// importBatch sends one batch of an import, with retries on unavailable;
// say prints a line for each retry.
func importBatch(ctx context.Context, cl *httpapi.Client, id string, rows []httpapi.Row, say func(string)) (httpapi.ImportRowsResult, error) {
	wait := importBackoff
	for try := 1; ; try++ {
		res, err := cl.ImportRows(ctx, id, rows)
		if err == nil || !httpapi.IsUnavailable(err) || try > importRetries {
			return res, err
		}
		say(fmt.Sprintf("xborder: a batch of %d rows (lines %d to %d) was not stored: %v; sending it again in %s (retry %d of %d)",
			len(rows), rows[0].Line, rows[len(rows)-1].Line, err, wait, try, importRetries))
		select {
		case <-ctx.Done():
			return res, err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// printRowReports writes the invalid rows and the rows with a warning,
// merged in line order: "line N: reason" and "line N: warning: reason".
func printRowReports(w io.Writer, invalid, warned []httpapi.InvalidRow) {
	type report struct {
		httpapi.InvalidRow
		warning bool
	}
	all := make([]report, 0, len(invalid)+len(warned))
	for _, r := range invalid {
		all = append(all, report{r, false})
	}
	for _, r := range warned {
		all = append(all, report{r, true})
	}
	slices.SortStableFunc(all, func(a, b report) int { return a.Line - b.Line })
	for _, r := range all {
		if r.warning {
			fmt.Fprintf(w, "line %d: warning: %s\n", r.Line, r.Reason)
		} else {
			fmt.Fprintf(w, "line %d: %s\n", r.Line, r.Reason)
		}
	}
}

// countLocal counts the rows refused before they reached the node.
func countLocal(rows []httpapi.InvalidRow) int {
	n := 0
	for _, r := range rows {
		if strings.HasPrefix(r.Reason, "file: ") {
			n++
		}
	}
	return n
}

// progress shows a bar on a terminal and plain lines otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	what  string
	lines int64
}

func newProgress(e *env, size int64, what string) *progress {
	p := &progress{w: e.stderr, what: what}
	if f, ok := e.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p.bar = progressbar.NewOptions64(size, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(what),
			progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) set(read int64, stored int) {
	if p.bar != nil {
		_ = p.bar.Set64(read)
		return
	}
	p.lines++
	fmt.Fprintf(p.w, "xborder: %s: %d bytes read, %d rows stored\n", p.what, read, stored)
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/xborder/xborder/internal/httpapi"
)

func init() { commands = append(commands, newDataCmd) }

const dataLong = `Data imports, removes and counts the agency's holdings (steward).

'data import' reads a CSV file with a header line, or JSON lines (one object
per line), takes the identifier from --column (default: a column named like
the kind, else "value", else the only column) and the agency's record
reference from --ref-column, and streams the rows to the node in batches.
The node canonicalises them (phone numbers in E.164 with --region for
national forms, ...), skips duplicates, and stores them, encrypted, through
the data Raft group; every replica then builds the encoded set partners
sync. Every invalid row is reported with its line and reason; the valid
rows are kept, and the exit status is 1 when some were invalid. A row that
is stored but probably wrong (a phone number possible but not valid, in no
range its country has allocated) is reported as "line N: warning: ..."
and counted by 'data stats'; --strict refuses such rows as invalid. The import
is one audit entry, with the kind and counts only. A batch that finds the
node unavailable (no quorum) is sent again up to 3 times, 2, 4 and 8 seconds
apart; then the import exits 4 and nothing of it is held: run it again.

'data remove' erases identifiers from the holdings at once and makes every
replica build a new base of the kind's set without them; partners stop
matching them once they sync it, at the latest at the next epoch ('xborder
keys rotate').
'data stats' counts the holdings per kind and shows the set versions;
--json adds every live epoch's set version and digest.`

// dataBatch is how many rows one API call carries.
const dataBatch = 5000

func newDataCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Import, remove and count the agency's holdings",
		Long:  dataLong,
		Example: `  xborder data import --kind phone --region GB --column msisdn --ref-column case phones.csv
  xborder data import --kind email mails.jsonl
  xborder data remove --kind phone gone.csv
  xborder data stats`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder data --help' for usage", "data: give a subcommand: import, remove or stats")
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")

	var in inputFlags
	var handling string
	var strict bool
	imp := &cobra.Command{
		Use:   "import --kind KIND [--region CC] [--column NAME] [--ref-column NAME] [--handling H0..H3] [--strict] FILE",
		Short: "Import identifiers from a CSV or JSON lines file",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			rd, cl, err := openInput("import", args[0], in, cf, dir)
			if err != nil {
				return err
			}
			defer rd.close()
			ctx := c.Context()
			im, err := cl.BeginImport(ctx, httpapi.BeginImport{Kind: in.kind, Region: in.region, Handling: handling, Strict: strict})
			if err != nil {
				return apiError(err)
			}
			prog := newProgress(e, rd.size, "importing")
			var invalid, warned []httpapi.InvalidRow
			stored, dups := 0, 0
			// Two batches in flight: one is canonicalised while the node
			// commits the other.
			var mu sync.Mutex
			var sendErr error
			var wg sync.WaitGroup
			sem := make(chan struct{}, 2)
			err = rd.batches(func(rows []httpapi.Row, bad []httpapi.InvalidRow, read int64) error {
				mu.Lock()
				invalid = append(invalid, bad...)
				failed := sendErr
				mu.Unlock()
				if failed != nil || len(rows) == 0 {
					return failed
				}
				rows = slices.Clone(rows)
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					res, err := importBatch(ctx, cl, im.ID, rows, func(msg string) {
						mu.Lock()
						defer mu.Unlock()
						fmt.Fprintln(e.stderr, msg)
					})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						if sendErr == nil {
							sendErr = apiError(err)
							if httpapi.IsUnavailable(err) {
								sendErr = exitError(exitUnavailable, err, fmt.Sprintf("the batch failed %d times; nothing of this import is held until one run completes: run it again once 'xborder node status' shows a quorum", importRetries+1))
							}
						}
						return
					}
					stored, dups = stored+res.Stored, dups+res.Duplicates
					invalid = append(invalid, res.Invalid...)
					warned = append(warned, res.Warnings...)
					prog.set(read, stored)
				}()
				return nil
			})
			wg.Wait()
			prog.done()
			if err == nil {
				err = sendErr
			}
			if err != nil {
				return err
			}
			res, err := cl.CommitImport(ctx, im.ID, httpapi.CommitImport{Invalid: countLocal(invalid)})
			if err != nil {
				return apiError(err)
			}
			printRowReports(e.stdout, invalid, warned)
			with := ""
			if len(warned) > 0 {
				with = fmt.Sprintf(", %d with warnings", len(warned))
			}
			fmt.Fprintf(e.stdout, "imported %d %s identifiers (%d duplicates, %d invalid%s) into epoch %d set version %d\n",
				res.Imported, res.Kind, res.Duplicates, len(invalid), with, res.Epoch, res.Version)
			if len(warned) > 0 {
				fmt.Fprintf(e.stderr, "xborder: warning: %d rows were imported with a warning (listed above): check them at their source; --strict refuses them\n", len(warned))
			}
			if len(invalid) > 0 {
				fmt.Fprintf(e.stderr, "xborder: %d invalid rows were not imported (listed above); the valid rows were kept\n", len(invalid))
				return silentExit(exitInvalid)
			}
			return nil
		},
	}
	in.register(imp)
	imp.Flags().StringVar(&handling, "handling", "", "handling code `H0`..H3 of the rows (default H0)")
	imp.Flags().BoolVar(&strict, "strict", false, "refuse, as invalid rows, values accepted only with a warning (phone numbers possible but not valid)")

	var rin inputFlags
	rm := &cobra.Command{
		Use:   "remove --kind KIND [--region CC] [--column NAME] FILE",
		Short: "Remove identifiers; partners stop matching them at their next sync, at the latest at the next epoch",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			rd, cl, err := openInput("remove", args[0], rin, cf, dir)
			if err != nil {
				return err
			}
			defer rd.close()
			removed, notHeld := 0, 0
			var invalid []httpapi.InvalidRow
			err = rd.batches(func(rows []httpapi.Row, bad []httpapi.InvalidRow, _ int64) error {
				invalid = append(invalid, bad...)
				if len(rows) == 0 {
					return nil
				}
				res, err := cl.RemoveRows(c.Context(), httpapi.RemoveRows{Kind: rin.kind, Region: rin.region, Rows: rows})
				if err != nil {
					return apiError(err)
				}
				removed, notHeld = removed+res.Removed, notHeld+res.NotHeld
				invalid = append(invalid, res.Invalid...)
				return nil
			})
			if err != nil {
				return err
			}
			slices.SortFunc(invalid, func(a, b httpapi.InvalidRow) int { return a.Line - b.Line })
			for _, r := range invalid {
				fmt.Fprintf(e.stdout, "line %d: %s\n", r.Line, r.Reason)
			}
			fmt.Fprintf(e.stdout, "removed %d %s identifiers (%d not held, %d invalid); partners stop matching them once they sync the new base, at the latest at the next epoch ('xborder keys rotate')\n",
				removed, rin.kind, notHeld, len(invalid))
			if len(invalid) > 0 {
				return silentExit(exitInvalid)
			}
			return nil
		},
	}
	rin.register(rm)

	var asJSON bool
	stats := &cobra.Command{
		Use:   "stats [--json]",
		Short: "Count the holdings per kind and show their encoded sets",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			st, err := cl.DataStats(c.Context())
			if err != nil {
				return apiError(err)
			}
			if asJSON {
				b, err := json.MarshalIndent(st, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s\n", b)
				return nil
			}
			fmt.Fprintf(e.stdout, "epoch %d", st.Epoch)
			if st.NextEpoch != 0 {
				fmt.Fprintf(e.stdout, " (epoch %d being prepared)", st.NextEpoch)
			}
			fmt.Fprintln(e.stdout)
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tROWS\tVERSIONS\tBUILT\tENTRIES\tDIGEST")
			for _, k := range st.Kinds {
				d := k.Digest
				if len(d) > 16 {
					d = d[:16]
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", k.Kind, k.Rows, k.Versions, k.Built, k.Entries, d)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, k := range st.Kinds {
				if k.Warnings > 0 {
					fmt.Fprintf(e.stdout, "%s: %d of %d identifiers held are possible but not valid numbers: they probably never match; 'xborder canon' shows which of a file\n",
						k.Kind, k.Warnings, k.Rows)
				}
				if k.Full {
					fmt.Fprintf(e.stdout, "%s: the set of epoch %d is at its largest size (14,680,064 identifiers): %d of %d versions are not in it and are not matched; remove identifiers of this kind (data remove) and rotate keys\n",
						k.Kind, k.Epoch, k.Versions-k.Built, k.Versions)
				}
			}
			return nil
		},
	}
	stats.Flags().BoolVar(&asJSON, "json", false, "print the statistics as JSON, with the set version and digest of every kind in every live epoch")
	cmd.AddCommand(imp, rm, stats)
	return cmd
}

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

// inputFlags are the flags that say how to read an input file.
type inputFlags struct {
	kind, region, column, refColumn string
}

func (f *inputFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.kind, "kind", "", "identifier `KIND`: phone, email, btc, eth, iban, address or document")
	c.Flags().StringVar(&f.region, "region", "", "default region `CC` (ISO 3166 alpha-2) for national forms")
	c.Flags().StringVar(&f.column, "column", "", "`NAME` of the identifier column or JSON field")
	c.Flags().StringVar(&f.refColumn, "ref-column", "", "`NAME` of the column or field with the agency's record reference")
}

// rowReader reads rows of a CSV file with a header, or of JSON lines.
type rowReader struct {
	f     *os.File
	size  int64
	cr    *countingReader
	flags inputFlags
	json  bool
	br    *bufio.Reader
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// openInput checks the input flags of 'data VERB', opens FILE and the
// node's API client; the caller closes the reader.
func openInput(verb, file string, fl inputFlags, cf *clientFlags, dir string) (*rowReader, *httpapi.Client, error) {
	if fl.kind == "" {
		return nil, nil, usageError("give --kind: phone, email, btc, eth, iban, address or document", "data %s: no --kind given", verb)
	}
	rd, err := openRows(file, fl)
	if err != nil {
		return nil, nil, err
	}
	cl, err := apiClient(cf, dir)
	if err != nil {
		rd.close()
		return nil, nil, err
	}
	return rd, cl, nil
}

func openRows(path string, fl inputFlags) (*rowReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, exitError(exitInvalid, err, "")
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, exitError(exitInvalid, err, "")
	}
	cr := &countingReader{r: f}
	br := bufio.NewReaderSize(cr, 1<<16)
	head, _ := br.Peek(512)
	head = bytes.TrimLeft(head, " \t\r\n\ufeff")
	return &rowReader{f: f, size: fi.Size(), cr: cr, flags: fl, json: len(head) > 0 && head[0] == '{', br: br}, nil
}

func (r *rowReader) close() { r.f.Close() }

// batches calls fn with up to dataBatch rows at a time, the rows refused
// while reading them (reason prefixed "file: "), and the bytes read so far.
func (r *rowReader) batches(fn func(rows []httpapi.Row, bad []httpapi.InvalidRow, read int64) error) error {
	var rows []httpapi.Row
	var bad []httpapi.InvalidRow
	flush := func() error {
		err := fn(rows, bad, r.cr.n)
		rows, bad = rows[:0], bad[:0]
		return err
	}
	add := func(row httpapi.Row, reason string) error {
		if reason != "" {
			bad = append(bad, httpapi.InvalidRow{Line: row.Line, Reason: "file: " + reason})
		} else {
			rows = append(rows, row)
		}
		if len(rows)+len(bad) >= dataBatch {
			return flush()
		}
		return nil
	}
	var err error
	if r.json {
		err = r.readJSON(add)
	} else {
		err = r.readCSV(add)
	}
	if err != nil {
		return err
	}
	return flush()
}

func (r *rowReader) readJSON(add func(httpapi.Row, string) error) error {
	col := r.flags.column
	sc := bufio.NewScanner(r.br)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var obj map[string]any
		row := httpapi.Row{Line: line}
		if err := json.Unmarshal(b, &obj); err != nil {
			if err := add(row, "not a JSON object"); err != nil {
				return err
			}
			continue
		}
		c := col
		if c == "" {
			c = r.flags.kind
			if _, ok := obj[c]; !ok {
				c = "value"
			}
		}
		v, ok := obj[c].(string)
		if !ok {
			if err := add(row, fmt.Sprintf("no string field %q", c)); err != nil {
				return err
			}
			continue
		}
		row.Value = v
		if r.flags.refColumn != "" {
			row.Ref, _ = obj[r.flags.refColumn].(string)
		}
		if err := add(row, ""); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return exitError(exitInvalid, fmt.Errorf("read input: %w", err), "")
	}
	return nil
}

func (r *rowReader) readCSV(add func(httpapi.Row, string) error) error {
	cr := csv.NewReader(r.br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return exitError(exitInvalid, fmt.Errorf("read CSV header: %w", err), "the first line must name the columns")
	}
	names := make([]string, len(head))
	for i, h := range head {
		names[i] = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
	}
	find := func(name string) int { return slices.Index(names, strings.ToLower(name)) }
	col := -1
	switch {
	case r.flags.column != "":
		if col = find(r.flags.column); col < 0 {
			return usageError(fmt.Sprintf("the header names %s", strings.Join(names, ", ")), "no column %q", r.flags.column)
		}
	case find(r.flags.kind) >= 0:
		col = find(r.flags.kind)
	case find("value") >= 0:
		col = find("value")
	case len(names) == 1:
		col = 0
	default:
		return usageError(fmt.Sprintf("give --column; the header names %s", strings.Join(names, ", ")), "which column holds the identifiers?")
	}
	ref := -1
	if r.flags.refColumn != "" {
		if ref = find(r.flags.refColumn); ref < 0 {
			return usageError(fmt.Sprintf("the header names %s", strings.Join(names, ", ")), "no column %q", r.flags.refColumn)
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var row httpapi.Row
		var pe *csv.ParseError
		if err == nil {
			row.Line, _ = cr.FieldPos(0)
		}
		if errors.As(err, &pe) {
			row.Line = pe.StartLine
			if err := add(row, "malformed CSV: "+pe.Err.Error()); err != nil {
				return err
			}
			continue
		} else if err != nil {
			return exitError(exitInvalid, fmt.Errorf("read input: %w", err), "")
		}
		if col >= len(rec) {
			if err := add(row, "too few columns"); err != nil {
				return err
			}
			continue
		}
		row.Value = rec[col]
		if ref >= 0 && ref < len(rec) {
			row.Ref = rec[ref]
		}
		if err := add(row, ""); err != nil {
			return err
		}
	}
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

package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/internal/httpapi"
)

// dataBatch is how many rows one API call carries.
const dataBatch = 5000

// inputFlags are the flags that say how to read an input file.
type inputFlags struct {
	kind, region, column, refColumn string
	classColumn                     string // import only (registered by 'data import')
	contactColumn, handlingColumn   string // import only: each row's contact point and handling code
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
		if r.flags.classColumn != "" {
			cl, _ := obj[r.flags.classColumn].(string)
			row.Class = strings.ToLower(strings.TrimSpace(cl))
		}
		if r.flags.contactColumn != "" {
			row.Contact, _ = obj[r.flags.contactColumn].(string)
		}
		if r.flags.handlingColumn != "" {
			h, _ := obj[r.flags.handlingColumn].(string)
			row.Handling = strings.ToUpper(strings.TrimSpace(h))
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
	optional := func(name string) (int, error) {
		if name == "" {
			return -1, nil
		}
		i := find(name)
		if i < 0 {
			return -1, usageError(fmt.Sprintf("the header names %s", strings.Join(names, ", ")), "no column %q", name)
		}
		return i, nil
	}
	class, err := optional(r.flags.classColumn)
	if err != nil {
		return err
	}
	contact, err := optional(r.flags.contactColumn)
	if err != nil {
		return err
	}
	handling, err := optional(r.flags.handlingColumn)
	if err != nil {
		return err
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
		if class >= 0 && class < len(rec) {
			row.Class = strings.ToLower(strings.TrimSpace(rec[class]))
		}
		if contact >= 0 && contact < len(rec) {
			row.Contact = rec[contact]
		}
		if handling >= 0 && handling < len(rec) {
			row.Handling = strings.ToUpper(strings.TrimSpace(rec[handling]))
		}
		if err := add(row, ""); err != nil {
			return err
		}
	}
}

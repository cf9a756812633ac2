package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/ident"
)

func init() { commands = append(commands, newCanonCmd) }

const canonLong = `Canon prints the canonical form of identifiers, one value per input line, as
the node will match them: two agencies meet on a value only if both get the
same canonical form. It reads FILE, or standard input when FILE is - or
missing, and writes exactly one line per input line, in order: the canonical
form, or "error: line N: <reason>". Blank lines are invalid (reason: empty).
With --json each output line is {"line":N,"canonical":"..."} or
{"line":N,"error":"..."}.

A value that is accepted but probably wrong (a phone number of the right
length in no range its country has allocated, such as 496 0123 from GB) is
printed with "xborder: warning: line N: <reason>" on standard error (with
--json, a "warning" field); --strict refuses such values as invalid lines.

Kinds and their canonical forms (docs/identifiers.md has the details):

  phone     E.164, +442079460958 (national spellings need --region)
  email     alice.smith@example.com, domain as IDNA A-label
  btc       bitcoin mainnet address, checksum verified, bech32 lower case
  eth       0x and 40 lower-case hex digits, EIP-55 checked if mixed case
  iban      GB82WEST12345698765432, mod-97 verified
  address   10 downing st|GB (rule-based; country from --region)
  document  GB:123456789 (issuing country from the value or --region)

--region is the ISO 3166 alpha-2 country the values come from: it reads
national phone numbers and 00/011 international prefixes as dialled there,
and is the default country of documents and addresses.

Exit status: 0 when every line is valid (warnings included), 1 when some are
not or FILE cannot be read, 2 for a usage mistake.`

const canonExample = `  xborder canon --kind phone --region GB examples/phones.txt
  printf '+44 20 7946 0958\n020 7946 0958\n' | xborder canon --kind phone --region GB
  xborder canon --kind iban --json ibans.txt`

// newCanonCmd builds "xborder canon", which canonicalises identifiers
// locally and needs no node.
func newCanonCmd(e *env, _ *clientFlags) *cobra.Command {
	var kind, region string
	var jsonOut, strict bool
	cmd := &cobra.Command{
		Use:     "canon --kind KIND [--region CC] [--json] [--strict] [FILE|-]",
		Short:   "Print the canonical form of identifiers, one per line",
		Long:    canonLong,
		Example: canonExample,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if kind == "" {
				return usageError("give --kind, one of "+canonKindList(), "canon: no --kind given")
			}
			k, err := ident.ParseKind(kind)
			if err != nil {
				return usageError("run 'xborder canon --help' for the kinds and their canonical forms", "canon: %v", err)
			}
			opt := ident.Options{Region: region, Strict: strict}
			if err := opt.Validate(); err != nil {
				return usageError("give an ISO 3166 alpha-2 country code, such as GB (not UK), TH or US",
					"canon: --region %q: %v", region, err)
			}
			name := "-"
			if len(args) == 1 {
				name = args[0]
			}
			in := e.stdin
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return exitError(exitInvalid, fmt.Errorf("canon: %w", err),
						"check the file name, or give - to read standard input")
				}
				defer f.Close()
				in = f
			} else {
				name = "standard input"
			}
			out := bufio.NewWriter(e.stdout)
			lines, bad, warned, err := canon(c.Context(), in, out, e.stderr, k, opt, jsonOut)
			if ferr := out.Flush(); err == nil && ferr != nil {
				err = fmt.Errorf("canon: write output: %w", ferr)
			}
			if err != nil {
				var re canonReadError
				if errors.As(err, &re) {
					return exitError(exitInvalid, fmt.Errorf("canon: read %s after %d lines: %w", name, lines, re.err), "")
				}
				return exitError(exitInvalid, err, "")
			}
			if warned > 0 {
				fmt.Fprintf(e.stderr, "xborder: warning: canon: %d of %d lines are possible but not valid %s values; --strict refuses them\n", warned, lines, k)
			}
			if bad > 0 {
				fmt.Fprintf(e.stderr, "xborder: error: canon: %d of %d lines are not valid %s values\n", bad, lines, k)
				return silentExit(exitInvalid)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "kind of the values: "+canonKindList())
	f.StringVar(&region, "region", "", "ISO 3166 alpha-2 country the values come from (national phone numbers, documents, addresses)")
	f.BoolVar(&jsonOut, "json", false, `write one JSON object per line: {"line":N,"canonical":"..."} or {"line":N,"error":"..."}`)
	f.BoolVar(&strict, "strict", false, "refuse values accepted only with a warning (phone numbers possible but not valid)")
	return cmd
}

// canonKindList names the kinds for help texts: "phone, email, ...".
func canonKindList() string {
	var names []string
	for _, k := range ident.Kinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}

// canonReadError marks a failure to read the input, as opposed to writing
// output.
type canonReadError struct{ err error }

func (e canonReadError) Error() string { return e.err.Error() }
func (e canonReadError) Unwrap() error { return e.err }

// canonLine is one line of --json output.
type canonLine struct {
	Line      int    `json:"line"`
	Canonical string `json:"canonical,omitempty"`
	Error     string `json:"error,omitempty"`
	Warning   string `json:"warning,omitempty"`
}

// canon writes one line to out for each line of in: its canonical form as
// an identifier of kind k, or why it is not valid; a warning about a line
// goes to warnOut (or into its JSON line). It returns the number of lines
// read, of invalid ones and of those with a warning. Lines end in \n or \r\n; a last line
// without an end counts. A line longer than ident.MaxLen is not held whole
// in memory: it is reported as too long.
// It stops between lines when ctx is done.
func canon(ctx context.Context, in io.Reader, out, warnOut io.Writer, k ident.Kind, opt ident.Options, jsonOut bool) (lines, bad, warned int, err error) {
	br := bufio.NewReaderSize(in, 64<<10)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	// keep is enough for a value of MaxLen bytes and its \r\n; a longer
	// line is cut there, which Canonical still rejects as too long.
	const keep = ident.MaxLen + 2
	line := make([]byte, 0, keep)
	for {
		if err := ctx.Err(); err != nil {
			return lines, bad, warned, fmt.Errorf("canon: stopped after %d lines: %w", lines, err)
		}
		line = line[:0]
		ended := false
		var rerr error
		for {
			chunk, err := br.ReadSlice('\n')
			if n := keep - len(line); n > 0 {
				line = append(line, chunk[:min(n, len(chunk))]...)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			ended = err == nil
			rerr = err
			break
		}
		if rerr != nil && rerr != io.EOF {
			return lines, bad, warned, canonReadError{rerr}
		}
		if !ended && len(line) == 0 {
			return lines, bad, warned, nil
		}
		lines++
		// A cut line keeps more than MaxLen bytes even after this.
		v := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		c, warn, cerr := ident.Check(k, v, opt)
		if cerr == nil && warn != nil && opt.Strict {
			c, cerr, warn = "", warn, nil
		}
		if cerr != nil {
			bad++
		} else if warn != nil {
			warned++
		}
		switch {
		case jsonOut && cerr != nil:
			err = enc.Encode(canonLine{Line: lines, Error: cerr.Error()})
		case jsonOut && warn != nil:
			err = enc.Encode(canonLine{Line: lines, Canonical: c, Warning: warn.Error()})
		case jsonOut:
			err = enc.Encode(canonLine{Line: lines, Canonical: c})
		case cerr != nil:
			_, err = fmt.Fprintf(out, "error: line %d: %v\n", lines, cerr)
		default:
			_, err = fmt.Fprintln(out, c)
			if warn != nil && err == nil {
				// Flushed first, so that a terminal shows the warning
				// after the line it is about.
				if f, ok := out.(interface{ Flush() error }); ok {
					err = f.Flush()
				}
				fmt.Fprintf(warnOut, "xborder: warning: line %d: %v\n", lines, warn)
			}
		}
		if err != nil {
			return lines, bad, warned, fmt.Errorf("canon: write output: %w", err)
		}
		if !ended {
			return lines, bad, warned, nil
		}
	}
}

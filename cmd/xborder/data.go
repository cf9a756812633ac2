package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/internal/httpapi"
)

func init() { commands = append(commands, newDataCmd) }

const dataLong = `Data imports, removes and counts the agency's holdings (steward).

'data import' reads a CSV file with a header line, or JSON lines (one object
per line), takes the identifier from --column (default: a column named like
the kind, else "value", else the only column), the agency's record
reference from --ref-column, and per row, if given, a contact point
(--contact-column) and a handling code (--handling-column, H0 to H3; empty:
--handling), which only the agency's liaison sees and a follow-up's answer
shares (docs/followup.md); it streams the rows to the node in batches.
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
keys rotate'). Every replica also erases them from its disk (snapshots, Raft
log, badger's files); 'data compact' asks every replica to do so now and
waits until each has.
'data stats' counts the holdings per kind and shows the set versions;
--json adds every live epoch's set version and digest.`

func newDataCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Import, remove, erase and count the agency's holdings",
		Long:  dataLong,
		Example: `  xborder data import --kind phone --region GB --column msisdn --ref-column case phones.csv
  xborder data import --kind email mails.jsonl
  xborder data remove --kind phone gone.csv
  xborder data compact
  xborder data stats`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder data --help' for usage", "data: give a subcommand: import, remove, compact or stats")
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")

	var in inputFlags
	var handling, class string
	var strict bool
	imp := &cobra.Command{
		Use:   "import --kind KIND [--region CC] [--column NAME] [--ref-column NAME] [--class CLASS] [--class-column NAME] [--contact-column NAME] [--handling H0..H3] [--handling-column NAME] [--strict] FILE",
		Short: "Import identifiers from a CSV or JSON lines file",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains([]string{"", "suspect", "victim", "witness", "unknown"}, class) {
				return usageError("give --class suspect, victim, witness or unknown (docs/victims.md)", "data import: class %q is not a subject class", class)
			}
			rd, cl, err := openInput("import", args[0], in, cf, dir)
			if err != nil {
				return err
			}
			defer rd.close()
			ctx := c.Context()
			im, err := cl.BeginImport(ctx, httpapi.BeginImport{Kind: in.kind, Region: in.region, Handling: handling, Strict: strict, Class: class})
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
	imp.Flags().StringVar(&class, "class", "", "subject `CLASS` of the rows that have none: suspect, victim, witness or unknown (default unknown; docs/victims.md)")
	imp.Flags().StringVar(&in.classColumn, "class-column", "", "`NAME` of the column or field with each row's subject class (suspect, victim, witness, unknown; empty: --class)")
	imp.Flags().StringVar(&handling, "handling", "", "handling code `H0`..H3 of the rows (default H0)")
	imp.Flags().StringVar(&in.contactColumn, "contact-column", "", "`NAME` of the column or field with each row's contact point (for follow-ups; at most 256 bytes)")
	imp.Flags().StringVar(&in.handlingColumn, "handling-column", "", "`NAME` of the column or field with each row's handling code H0..H3 (empty: --handling)")
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
			fmt.Fprintln(tw, "KIND\tROWS\tSUSPECT\tVICTIM\tWITNESS\tUNKNOWN\tVERSIONS\tBUILT\tENTRIES\tDIGEST")
			for _, k := range st.Kinds {
				d := k.Digest
				if len(d) > 16 {
					d = d[:16]
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", k.Kind, k.Rows, k.Classes["suspect"], k.Classes["victim"],
					k.Classes["witness"], k.Classes["unknown"], k.Versions, k.Built, k.Entries, d)
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
	cmd.AddCommand(imp, rm, newDataCompactCmd(e, cf, &dir), stats)
	return cmd
}

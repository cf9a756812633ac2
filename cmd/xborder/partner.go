package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newPartnerCmd) }

const partnerLong = `Partner pins, lists and removes partner agencies. A partner is pinned by its
signed card; check its fingerprint with the partner out of band and give it
with --fingerprint. A newer card signed by the same agency key replaces the
pinned one. Pins are replicated; removing a partner is an audit entry and
closes its connections at once.`

func newPartnerCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "partner",
		Short: "Pin, list and remove partner agencies",
		Long:  partnerLong,
		Example: `  xborder partner add th.card --fingerprint 7K3Q-M2XA-... --dir /var/lib/xborder
  xborder partner list --dir /var/lib/xborder
  xborder partner remove TH --dir /var/lib/xborder`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder partner --help' for usage", "partner: give a subcommand: add, list or remove")
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")

	var fingerprint string
	add := &cobra.Command{
		Use:   "add CARD [--fingerprint F]",
		Short: "Pin a partner by its card file (- for stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(io.LimitReader(e.stdin, 1<<20))
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("partner add: %w", err), "give the card file the partner sent")
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			p, err := cl.AddPartner(c.Context(), string(b), fingerprint)
			if err != nil {
				return apiError(err)
			}
			verb := "pinned"
			if p.Replaced {
				verb = "replaced the card of"
			}
			fmt.Fprintf(e.stdout, "%s %s (%s), %d replicas, card sequence %d, expires %s\n", verb, p.Agency, p.Name,
				len(p.Replicas), p.Sequence, p.Expires.UTC().Format(time.RFC3339))
			if fingerprint == "" {
				fmt.Fprintf(e.stderr, "xborder: warning: fingerprint not checked; it is %s: compare it with the partner's\n", p.Fingerprint)
			}
			return nil
		},
	}
	add.Flags().StringVar(&fingerprint, "fingerprint", "", "the fingerprint the partner gave out of band")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the pinned partners (--json: with their witness keys)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			ps, err := cl.Partners(c.Context())
			if err != nil {
				return apiError(err)
			}
			if asJSON {
				return writeJSON(e, ps)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AGENCY\tNAME\tFINGERPRINT\tREPLICAS\tEXPIRES")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", p.Agency, p.Name, p.Fingerprint, len(p.Replicas), p.Expires.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of partners, witness keys included")
	remove := &cobra.Command{
		Use:   "remove CC",
		Short: "Unpin a partner and close its connections",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			if err := cl.RemovePartner(c.Context(), strings.ToUpper(args[0])); err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "removed %s\n", strings.ToUpper(args[0]))
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newApproveCmd, newQueriesCmd) }

const approveLong = `Approve signs off a query that the policy wants a second pair of eyes on
(large queries, sensitive kinds or offences). The approver must be another
user than the investigator who made it, with a role the policy lets approve
the query's kind. 'xborder queries --pending' lists what waits. The
investigator's 'xborder query' then runs it; an approval is good for one run
of exactly the approved kind, case, partners and size.`

func newApproveCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:     "approve QUERY-ID",
		Short:   "Approve a pending query",
		Long:    approveLong,
		Example: `  xborder approve q-3f2a9c0d4e5b6a71 --token-file bob.token`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			rec, err := cl.Approve(c.Context(), args[0])
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "approved %s (%s, %d padded, partners %s, by %s)\n", rec.ID, rec.Kind, rec.PaddedSize,
				strings.Join(rec.Partners, ","), rec.User)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	return cmd
}

func newQueriesCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	var pending, jsonOut bool
	cmd := &cobra.Command{
		Use:   "queries [--pending] [--json]",
		Short: "List the queries that needed an approver",
		Long: `Queries lists the queries that needed an approver and that you may see (your
own, or those of kinds your role may approve): pending, approved or done.`,
		Example: `  xborder queries --pending --token-file bob.token`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			recs, err := cl.Queries(c.Context(), pending)
			if err != nil {
				return apiError(err)
			}
			if jsonOut {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(recs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tUSER\tKIND\tSIZE\tPARTNERS\tCASE\tCREATED")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Status, r.User, r.Kind, r.PaddedSize,
					strings.Join(r.Partners, ","), r.Case, r.Created.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	cmd.Flags().BoolVar(&pending, "pending", false, "only the queries that wait for an approver")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "write JSON")
	return cmd
}

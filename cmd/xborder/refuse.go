package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newRefuseCmd) }

const refuseLong = `Refuse turns down a query that waits for an approver, with a reason its
investigator reads in 'xborder queries'. A refused query never runs. The same
users as may approve it may refuse it: another user than the investigator
who made it, with a role the policy lets approve the query's kind. The
refusal is an approval entry (outcome denied) on the ledger; the reason
stays in the query's record, not in the ledger.`

func newRefuseCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, reason string
	cmd := &cobra.Command{
		Use:     "refuse QUERY-ID --reason TEXT",
		Short:   "Refuse a pending query, with a reason",
		Long:    refuseLong,
		Example: `  xborder refuse q-3f2a9c0d4e5b6a71 --reason 'no legal basis for this offence' --token-file bob.token`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if reason == "" {
				return usageError("give --reason TEXT: why, for the investigator", "refuse: no --reason given")
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			rec, err := cl.Refuse(c.Context(), args[0], reason)
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "refused %s (%s, %d padded, by %s)\n", rec.ID, rec.Kind, rec.PaddedSize, rec.User)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the query is refused, for its investigator (at most 500 bytes)")
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	return cmd
}

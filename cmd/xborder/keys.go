package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newKeysCmd) }

const keysLong = `Keys manages the agency's OPRF epochs (admin).

'keys rotate' commits a new epoch: its public keys, signed by the agency
key, go into the audit ledger and the agency card, and every replica builds
the new epoch's encoded sets in the background, from the seed it ratchets
itself (seeds never travel through Raft). The current epoch keeps answering
partners until the new one is ready; then it retires and its seed is erased.
Removed identifiers stop matching from the new epoch on.`

func newKeysCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:     "keys",
		Short:   "Rotate the agency's OPRF epoch keys",
		Long:    keysLong,
		Example: `  xborder keys rotate --dir /var/lib/xborder`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder keys --help' for usage", "keys: give a subcommand: rotate")
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Commit a new epoch; the current one answers until it is ready",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			r, err := cl.RotateKeys(c.Context())
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "epoch %d committed; epoch %d answers until its sets are ready ('xborder data stats')\n", r.NextEpoch, r.Epoch)
			return nil
		},
	}
	cmd.AddCommand(rotate)
	return cmd
}

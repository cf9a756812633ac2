package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newCardCmd) }

func newCardCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, out string
	cmd := &cobra.Command{
		Use:   "card [--dir DIR] [--out FILE]",
		Short: "Print the agency's signed card and its fingerprint",
		Long: `Card prints the agency's signed card (agency code and name, replica peer IDs
and addresses, agency public key, epoch public keys, expiry) on stdout, and
its fingerprint on stderr. Send the card to a partner, and read the
fingerprint out to them over another channel: they pin the card with
'xborder partner add CARD --fingerprint F'.`,
		Example: "  xborder card --dir /var/lib/xborder --out gb.card",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			cd, err := cl.Card(c.Context())
			if err != nil {
				return apiError(err)
			}
			if out != "" {
				if err := os.WriteFile(out, []byte(cd.Card), 0o644); err != nil {
					return exitError(exitInvalid, fmt.Errorf("card: %w", err), "")
				}
				fmt.Fprintf(e.stdout, "card written to %s\nfingerprint: %s\n", out, cd.Fingerprint)
				return nil
			}
			fmt.Fprint(e.stdout, cd.Card)
			fmt.Fprintf(e.stderr, "fingerprint: %s\n", cd.Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	cmd.Flags().StringVar(&out, "out", "", "write the card to `FILE` and print the fingerprint")
	return cmd
}

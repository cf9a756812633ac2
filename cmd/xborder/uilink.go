package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newUILinkCmd) }

const uiLinkLong = `Ui-link makes a one-time sign-in link to the web console (docs/console.md)
for a local user, and prints it. Hand it to that user alone: it signs them in
once, as their token would, and expires after 15 minutes. The link is good on
the replica that made it (the one --api or --dir names), whose console keeps
only the SHA-256 of its secret. Only who may manage users (admins) may make
one; making it is recorded on the audit ledger first (a user entry: who
made a link for whom) and logged with the user's name, never the link.

This verb talks to the node: give --api URL and --token-file FILE, or --dir
DIR of the local node (its api.url and admin.token).`

func newUILinkCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, user string
	cmd := &cobra.Command{
		Use:   "ui-link --user NAME",
		Short: "Make a one-time sign-in link to the web console",
		Long:  uiLinkLong,
		Example: `  xborder ui-link --user alice --dir /var/lib/xborder
  xborder ui-link --user alice --api https://gb-r1.example:8443 --token-file admin.token`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if user == "" {
				return usageError("give --user NAME: a local user ('xborder user list')", "ui-link: no --user given")
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			l, err := cl.ConsoleLink(c.Context(), user)
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintln(e.stdout, strings.TrimSuffix(cl.BaseURL, "/")+l.Path)
			fmt.Fprintf(e.stderr, "one-time sign-in link for %s, good until %s on this replica only\n",
				l.User, l.Expires.Local().Format(time.DateTime))
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "the local user the link signs in")
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	return cmd
}

package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newUserCmd) }

const userLong = `User manages the node's local users. Each has a role (investigator,
approver, auditor, steward, admin or liaison) and an API token, which 'user add'
prints once (or writes to --out FILE with mode 0600); the node keeps only
its SHA-256. Every API call is authorised by role through the policy in
force; admins may always manage users.

These verbs talk to the node: give --api URL and --token-file FILE, or
--dir DIR of the local node (its api.url and admin.token).`

func newUserCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list and remove the node's local users",
		Long:  userLong,
		Example: `  xborder user add alice --role investigator --dir /var/lib/xborder --out alice.token
  xborder user list --dir /var/lib/xborder
  xborder user remove alice --dir /var/lib/xborder`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder user --help' for usage", "user: give a subcommand: add, list or remove")
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")

	var role, out string
	add := &cobra.Command{
		Use:   "add NAME --role ROLE [--out FILE]",
		Short: "Add a user and print its token once",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if role == "" {
				return usageError("give --role: investigator, approver, auditor, steward, admin or liaison", "user add: no --role given")
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			u, err := cl.AddUser(c.Context(), args[0], role)
			if err != nil {
				return apiError(err)
			}
			if out != "" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err == nil {
					_, err = fmt.Fprintln(f, u.Token)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					return exitError(exitInvalid, fmt.Errorf("user add: write token: %w (the user exists: remove it and add it again)", err), "")
				}
				fmt.Fprintf(e.stdout, "added %s (%s); token written to %s\n", u.Name, u.Role, out)
				return nil
			}
			fmt.Fprintf(e.stdout, "added %s (%s); token (shown only now):\n%s\n", u.Name, u.Role, u.Token)
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "", "the user's role: investigator, approver, auditor, steward, admin or liaison")
	add.Flags().StringVar(&out, "out", "", "write the token to `FILE` (mode 0600) instead of printing it")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their roles",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			us, err := cl.Users(c.Context())
			if err != nil {
				return apiError(err)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.Created.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user; its token stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			if err := cl.RemoveUser(c.Context(), args[0]); err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "removed %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/internal/httpapi"
)

// init adds "policy apply" under the policy command of policy.go. Files
// of a package are initialised in file name order, so policy.go's init has
// registered newPolicyCmd by now; the hook wraps that constructor.
func init() {
	for i, newCmd := range commands {
		if newCmd(&env{}, &clientFlags{}).Name() != "policy" {
			continue
		}
		commands[i] = func(e *env, cf *clientFlags) *cobra.Command {
			cmd := newCmd(e, cf)
			cmd.AddCommand(newPolicyApplyCmd(e, cf))
			return cmd
		}
		return
	}
	commands = append(commands, func(e *env, cf *clientFlags) *cobra.Command {
		cmd := &cobra.Command{Use: "policy", Short: "Manage the policy in force", Args: cobra.NoArgs}
		cmd.AddCommand(newPolicyApplyCmd(e, cf))
		return cmd
	})
}

func newPolicyApplyCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	var pf policyFiles
	cmd := &cobra.Command{
		Use:   "apply --policy FILE --limits FILE [--dir DIR]",
		Short: "Put policy files in force on every replica of the node",
		Long: `Apply sends both policy files to the node, which parses them and commits them
through the audit ledger as one policy entry carrying their version; every
replica then decides with that version. A file with a mistake is refused
with its file name, line and reason, and the version in force stays.`,
		Example: "  xborder policy apply --policy policy.cedar --limits limits.yaml --dir /var/lib/xborder",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if pf.policy == "" || pf.limits == "" {
				return usageError("give both --policy FILE and --limits FILE", "policy apply: missing --policy or --limits")
			}
			p, err := os.ReadFile(pf.policy)
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("policy apply: %w", err), "check the --policy file name")
			}
			l, err := os.ReadFile(pf.limits)
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("policy apply: %w", err), "check the --limits file name")
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			v, err := cl.ApplyPolicy(c.Context(), httpapi.PolicyFiles{PolicyName: pf.policy, Policy: string(p),
				LimitsName: pf.limits, Limits: string(l)})
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "policy %s in force\n", v)
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	return cmd
}

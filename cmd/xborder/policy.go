package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/policy"
)

func init() { commands = append(commands, newPolicyCmd) }

const policyLong = `Policy checks and tries out policy files without a node. A policy is two
files: Cedar policies (who may do what) and a limits YAML file (how much);
docs/policy.md is the reference of both, with the schema the Cedar file is
validated against.

  check   validate both files and print their version
  eval    decide one request, given as JSON, and print the decision as JSON`

const policyCheckLong = `Check parses and validates the Cedar policies against the schema and the
limits file, and prints the version the node records with every decision:
"sha256:" and 64 hex digits over the bytes of both files.

Exit status: 0 when both files are valid; 1 with "FILE:LINE: reason" when
one is not or cannot be read; 2 for a usage mistake.`

const policyEvalLong = `Eval decides one request against the policy files (or, with --default, the
policy of a node that has none) and prints the decision as JSON: allow,
reasons (each {"id","message"}), reserve (each {"key","amount","limit"}: the
budget the ledger would reserve), needs_approval, disclosure, handling and
version.

The request file (or standard input with --request -) holds one JSON object:

  {
    "principal": {"agency": "TH"}              a partner agency, inbound
              or {"user": "alice", "role": "investigator"}   a local user
    "action":  "match"        match, sync, export, read_ledger, import, approve,
                              manage_users, manage_partners, manage_keys, manage_policy
    "kind":    "phone"        phone, email, btc, eth, iban, address, document
                              (for match, sync, import and approve)
    "partner": "GB"           the partner a local user's match or sync goes to
    "context": {"purpose": "...", "legal_basis": "...", "offence": "thb",
                "case_ref": "OP-1", "padded_size": 1024, "urgent": false},
    "time":    "2026-11-27T12:00:00Z",        RFC 3339
    "used":    {"partner/TH/phone/DAY": 5000},  budget already used, by key
    "approved": false,        an approver has signed the query off
    "epoch":   7              the responder key epoch of an inbound match
  }

Unknown fields are an error. Budget keys are partner/CC/KIND/DAY,
kind/KIND/DAY, case/local/REF, case/partner/CC:REF and key/EPOCH/KIND, with
the literal DAY.

Exit status: 0 when the request is allowed; 3 when it is denied (the decision
is still printed); 1 when a file is invalid or cannot be read; 2 for a usage
mistake.`

const policyExample = `  xborder policy check --policy examples/policy/policy.cedar --limits examples/policy/limits.yaml
  xborder policy eval --policy examples/policy/policy.cedar --limits examples/policy/limits.yaml --request req.json
  echo '{"principal":{"user":"root","role":"admin"},"action":"manage_keys"}' | xborder policy eval --default --request -`

// newPolicyCmd builds "xborder policy", which works on policy files locally
// and needs no node.
func newPolicyCmd(e *env, _ *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policy",
		Short:   "Check policy files and evaluate requests against them",
		Long:    policyLong,
		Example: policyExample,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder policy --help' for usage", "policy: give a subcommand: check or eval")
		},
	}
	cmd.AddCommand(newPolicyCheckCmd(e), newPolicyEvalCmd(e))
	return cmd
}

// policyFiles are the flags naming the two files of a policy.
type policyFiles struct {
	policy, limits string
}

func (pf *policyFiles) register(c *cobra.Command) {
	c.Flags().StringVar(&pf.policy, "policy", "", "the Cedar policy `FILE`")
	c.Flags().StringVar(&pf.limits, "limits", "", "the limits YAML `FILE`")
}

// load reads and parses the two files; verb names the subcommand in errors.
func (pf *policyFiles) load(verb string) (*policy.Set, error) {
	if pf.policy == "" || pf.limits == "" {
		return nil, usageError("give both --policy FILE and --limits FILE", "policy %s: missing --policy or --limits", verb)
	}
	p, err := os.ReadFile(pf.policy)
	if err != nil {
		return nil, exitError(exitInvalid, fmt.Errorf("policy %s: %w", verb, err), "check the --policy file name")
	}
	l, err := os.ReadFile(pf.limits)
	if err != nil {
		return nil, exitError(exitInvalid, fmt.Errorf("policy %s: %w", verb, err), "check the --limits file name")
	}
	s, err := policy.Parse(policy.Files{PolicyName: pf.policy, Policy: p, LimitsName: pf.limits, Limits: l})
	if err != nil {
		var fe *policy.FileError
		if errors.As(err, &fe) {
			return nil, exitError(exitInvalid, err, "fix the line above; docs/policy.md describes both files")
		}
		return nil, exitError(exitInvalid, fmt.Errorf("policy %s: %w", verb, err), "")
	}
	return s, nil
}

func newPolicyCheckCmd(e *env) *cobra.Command {
	var pf policyFiles
	cmd := &cobra.Command{
		Use:     "check --policy FILE --limits FILE",
		Short:   "Validate policy files and print their version",
		Long:    policyCheckLong,
		Example: `  xborder policy check --policy examples/policy/policy.cedar --limits examples/policy/limits.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := pf.load("check")
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, s.Version())
			return nil
		},
	}
	pf.register(cmd)
	return cmd
}

func newPolicyEvalCmd(e *env) *cobra.Command {
	var pf policyFiles
	var request string
	var useDefault bool
	cmd := &cobra.Command{
		Use:   "eval (--policy FILE --limits FILE | --default) --request FILE|-",
		Short: "Decide one request and print the decision as JSON",
		Long:  policyEvalLong,
		Example: `  xborder policy eval --policy examples/policy/policy.cedar --limits examples/policy/limits.yaml --request req.json
  xborder policy eval --default --request - < req.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if request == "" {
				return usageError("give --request FILE, or --request - to read standard input", "policy eval: missing --request")
			}
			var s *policy.Set
			switch {
			case useDefault && (pf.policy != "" || pf.limits != ""):
				return usageError("give either --default or --policy and --limits", "policy eval: --default with policy files")
			case useDefault:
				s = policy.Default()
			default:
				var err error
				if s, err = pf.load("eval"); err != nil {
					return err
				}
			}
			var b []byte
			var err error
			if request == "-" {
				b, err = io.ReadAll(io.LimitReader(e.stdin, 1<<20+1))
			} else {
				b, err = os.ReadFile(request)
			}
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("policy eval: %w", err), "check the --request file name")
			}
			r, err := policy.ParseRequest(b)
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("policy eval: %s: %w", request, err),
					"run 'xborder policy eval --help' for the request JSON")
			}
			d := s.Decide(r)
			out, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				return fmt.Errorf("policy eval: encode decision: %w", err)
			}
			fmt.Fprintf(e.stdout, "%s\n", out)
			if !d.Allow {
				return silentExit(exitDenied)
			}
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&request, "request", "", "the request JSON `FILE`, or - for standard input")
	cmd.Flags().BoolVar(&useDefault, "default", false, "decide with the policy of a node that has no policy files")
	return cmd
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, as DESIGN.md ("Local access") fixes them.
const (
	exitOK          = 0 // ok
	exitInvalid     = 1 // some input invalid
	exitUsage       = 2 // usage
	exitDenied      = 3 // denied by policy
	exitUnavailable = 4 // unavailable: no quorum, partner unreachable
	exitVerify      = 5 // verification failed
)

// cliError carries an exit code and an optional hint to run. A command
// returns one to choose its exit code; any other error exits 1.
type cliError struct {
	code int
	err  error
	hint string
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// exitError wraps err with an exit code and a hint (which may be empty).
func exitError(code int, err error, hint string) error {
	return &cliError{code: code, err: err, hint: hint}
}

// usageError reports a mistake in the command line (exit 2).
func usageError(hint string, format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...), hint: hint}
}

// silentExit ends the command with code and prints nothing more: the
// command has already written what the user needs (for example one error
// line per invalid input line).
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// env holds what a command may touch of the outside world, so that tests
// and testscript run commands in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// clientFlags are the flags of every verb that talks to a running node.
type clientFlags struct {
	api       string // base URL of the node's HTTP API
	tokenFile string // path of a file holding the user's API token
}

// commands lists the constructors of the top-level verbs. Each verb's file
// adds itself in an init function, so verbs live in files of their own.
var commands []func(*env, *clientFlags) *cobra.Command

func newRoot(e *env) *cobra.Command {
	cf := &clientFlags{}
	root := &cobra.Command{
		Use:   "xborder",
		Short: "Privacy-preserving identifier matching between agencies, with an audited ledger",
		Long: `xborder is the node each national agency runs to learn whether partner agencies
hold the same phone numbers, wallets, addresses or documents, by private set
intersection: no raw identifier crosses a border, and every query is recorded
in a replicated, tamper-evident audit ledger.

Exit codes: 0 ok, 1 some input invalid, 2 usage, 3 denied by policy,
4 unavailable (no quorum, partner unreachable), 5 verification failed.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.PersistentFlags().StringVar(&cf.api, "api", os.Getenv("XBORDER_API"),
		"base URL of the node's HTTP API, for verbs that talk to a node (env XBORDER_API)")
	root.PersistentFlags().StringVar(&cf.tokenFile, "token-file", os.Getenv("XBORDER_TOKEN_FILE"),
		"file holding your API token, for verbs that talk to a node (env XBORDER_TOKEN_FILE)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError(fmt.Sprintf("run '%s --help' for usage", c.CommandPath()), "%v", err)
	})
	for _, c := range commands {
		root.AddCommand(c(e, cf))
	}
	return root
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var s silentExit
	if errors.As(err, &s) {
		return int(s)
	}
	code := exitInvalid
	hint := ""
	var ce *cliError
	if errors.As(err, &ce) {
		code, hint = ce.code, ce.hint
	} else if isUsage(err) {
		code = exitUsage
		hint = "run 'xborder --help' for usage"
	}
	fmt.Fprintf(stderr, "xborder: error: %v\n", err)
	if hint != "" {
		fmt.Fprintf(stderr, "xborder: hint: %s\n", hint)
	}
	return code
}

// isUsage reports whether err is one of cobra's own usage errors (unknown
// command, wrong number of arguments), which cobra does not type.
func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "received ", "unknown flag", "unknown shorthand"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

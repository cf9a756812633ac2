package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/testnet"
)

func init() { commands = append(commands, newTestnetCmd) }

// testnetFlags are the flags of both testnet verbs.
type testnetFlags struct {
	agencies, replicas, holdings int
	dir                          string
	seed                         uint64
	policyDir                    string
	brk                          string
}

func (f *testnetFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.IntVar(&f.agencies, "agencies", 3, "how many agencies, 1 to 5 (GB, TH, DE, NL, FR in that order)")
	fl.IntVar(&f.replicas, "replicas", 3, "replicas per agency: 1, 3 or 5")
	fl.IntVar(&f.holdings, "holdings", 20000, "synthetic rows each agency imports")
	fl.StringVar(&f.dir, "dir", "", "DIRectory for the whole federation, absent or empty (default: a new temporary directory)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the synthetic holdings and the ground truth")
	fl.StringVar(&f.policyDir, "policy-dir", "", "DIRectory with policy.cedar and limits.yaml (default: the example policy built into xborder, examples/policy, written to $XDG_CACHE_HOME/xborder/policy-DIGEST)")
	// A test hook: break one part so that a check must fail.
	fl.StringVar(&f.brk, "break", "", "")
	_ = fl.MarkHidden("break")
}

// config turns the flags into a testnet.Config.
func (f *testnetFlags) config(e *env, verb string) (testnet.Config, error) {
	if f.agencies < 1 || f.agencies > testnet.MaxAgencies {
		return testnet.Config{}, usageError("examples/policy/ knows five agencies: give --agencies 1 to 5",
			"testnet %s: --agencies %d: %v", verb, f.agencies, testnet.ErrTooManyAgencies)
	}
	if f.replicas != 1 && f.replicas != 3 && f.replicas != 5 {
		return testnet.Config{}, usageError("give --replicas 1, 3 or 5", "testnet %s: --replicas %d: %v", verb, f.replicas, testnet.ErrReplicas)
	}
	if f.holdings < 10 {
		return testnet.Config{}, usageError("give --holdings 10 or more", "testnet %s: --holdings %d: too few", verb, f.holdings)
	}
	bin, err := selfBinary()
	if err != nil {
		return testnet.Config{}, exitError(exitUnavailable, fmt.Errorf("testnet %s: %w", verb, err), "")
	}
	dir := f.dir
	if dir == "" {
		dir, err = os.MkdirTemp("", "xborder-testnet-")
		if err != nil {
			return testnet.Config{}, exitError(exitUnavailable, fmt.Errorf("testnet %s: %w", verb, err), "")
		}
	}
	return testnet.Config{
		Dir: dir, Binary: bin, Agencies: f.agencies, Replicas: f.replicas, Holdings: f.holdings,
		Seed: f.seed, PolicyDir: f.policyDir, Progress: e.stderr, Break: f.brk,
	}, nil
}

// selfBinary returns the path of the running xborder program, for the
// testnet's children. When the program was started by a name on PATH (as
// testscript does), that name is kept, since a multi-call test binary
// tells its programs apart by it.
func selfBinary() (string, error) {
	if filepath.Base(os.Args[0]) == "xborder" {
		if p, err := exec.LookPath(os.Args[0]); err == nil {
			return filepath.Abs(p)
		}
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the xborder program: %w", err)
	}
	return p, nil
}

func newTestnetCmd(e *env, _ *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Run a whole federation of agencies on this machine, or a demo of it",
		Long: `Testnet runs a federation of agencies on this machine: each agency's replicas
are child processes of this program on loopback ports, built through the same
verbs an operator uses (init, replica add, node run --join, user add, card,
partner add, policy apply, data import), with synthetic holdings whose
overlaps between agencies are known (DIR/truth.json). The policy applied is
the example built into xborder (examples/policy), or the files of
--policy-dir; the program needs nothing of the repository.

  up     build the federation, print its table, and run until interrupted
  demo   build it, run a scripted scenario of checks, print PASS or FAIL for
         each and a final line 'N passed, M failed', and stop it
  chaos  build it, run a workload under a seeded nemesis (partitions, kills,
         pauses, latency, clock skew), check the histories and invariants,
         and stop it (docs/RELIABILITY.md)

docs/testnet.md describes the federation and every check of the demo.`,
	}
	cmd.AddCommand(newTestnetUpCmd(e), newTestnetDemoCmd(e), newTestnetChaosCmd(e))
	return cmd
}

func newTestnetUpCmd(e *env) *cobra.Command {
	var f testnetFlags
	cmd := &cobra.Command{
		Use:   "up [--agencies N] [--replicas R] [--holdings H] [--dir DIR] [--seed S]",
		Short: "Build a federation and run it until interrupted",
		Example: `  xborder testnet up --agencies 2 --replicas 3 --dir /tmp/fed
  xborder testnet up --agencies 5 --replicas 1 --holdings 100000`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := f.config(e, "up")
			if err != nil {
				return err
			}
			// Interrupted, up stops the federation; main's context does the
			// same, but up must not die of the signal wherever it runs.
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := testnet.Up(ctx, cfg)
			if err != nil {
				return testnetError("up", err)
			}
			fmt.Fprintf(e.stdout, "federation of %d agencies up in %s\n\n", len(n.Agencies), n.Dir())
			n.PrintTable(e.stdout)
			fmt.Fprintln(e.stdout)
			n.PrintConsole(ctx, e.stdout)
			fmt.Fprintln(e.stdout)
			n.PrintTry(e.stdout)
			fmt.Fprintln(e.stdout, "\nrunning; interrupt (Ctrl-C) to stop every replica")
			<-ctx.Done()
			fmt.Fprintln(e.stderr, "stopping every replica")
			if err := n.Close(); err != nil {
				return exitError(exitUnavailable, fmt.Errorf("testnet up: %w", err), "")
			}
			fmt.Fprintln(e.stdout, "every replica stopped; no port left listening")
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newTestnetDemoCmd(e *env) *cobra.Command {
	var f testnetFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "demo [--agencies N] [--replicas R] [--holdings H] [--dir DIR] [--seed S] [--json]",
		Short: "Build a federation, run the demo's checks and stop it; exit 1 when a check fails",
		Example: `  xborder testnet demo
  xborder testnet demo --agencies 2 --replicas 3 --holdings 2000`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := f.config(e, "demo")
			if err != nil {
				return err
			}
			out := e.stdout
			if asJSON {
				out = e.stderr // the report is the JSON document; the steps go to stderr
			}
			rep := testnet.NewReport(out)
			err = testnet.Demo(c.Context(), cfg, rep)
			if asJSON {
				if jerr := rep.WriteJSON(e.stdout); jerr != nil && err == nil {
					err = jerr
				}
			}
			if err != nil {
				return testnetError("demo", err)
			}
			if _, failed := rep.Counts(); failed > 0 {
				return silentExit(exitInvalid)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "write the report as one JSON document on stdout (the steps go to stderr)")
	return cmd
}

// testnetError maps an error of the testnet package to an exit code.
func testnetError(verb string, err error) error {
	switch {
	case errors.Is(err, testnet.ErrTooManyAgencies):
		return usageError("give --agencies 1 to 5", "testnet %s: %v", verb, err)
	case errors.Is(err, os.ErrExist):
		return usageError("give a new or empty --dir", "testnet %s: %v", verb, err)
	case errors.Is(err, testnet.ErrNoPolicy):
		return usageError("give --policy-dir a directory that holds policy.cedar and limits.yaml, or leave it out for the example policy built into xborder", "testnet %s: %v", verb, err)
	}
	return exitError(exitUnavailable, fmt.Errorf("testnet %s: %w", verb, err), "the replicas' logs are in DIR/logs")
}

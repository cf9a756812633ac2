package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/testnet"
)

func newTestnetChaosCmd(e *env) *cobra.Command {
	var f testnetFlags
	var asJSON bool
	var duration time.Duration
	var faults []string
	cmd := &cobra.Command{
		Use:   "chaos [--agencies N] [--replicas R] [--holdings H] [--duration D] [--seed S] [--json]",
		Short: "Run a federation under a seeded nemesis and check its histories; exit 1 when an invariant fails",
		Long: `Chaos builds a federation as 'testnet demo' does, routes every Raft link
between replicas and every libp2p link between agencies through a proxy of
its own (toxiproxy, in this process, on loopback), and for --duration runs a
workload (queries of every partner, approvals, card re-pins, imports and
removals, policy applies, key rotations, ledger reads and exports) while a
nemesis drawn from --seed partitions replicas from their group, cuts
agencies from partners, adds latency, resets connections, kills replicas
(leaders favoured) and restarts them, pauses them (SIGSTOP) past the
election timeout and skews their clocks. Then it heals everything and
checks the invariants: each agency's ledger history linearizable
(porcupine), match_out/match_result/match_in exactly once, every sync
answer and denial a partner received on the sender's ledger, approvals and
pins recorded, budgets, the replicas' sizes and checkpoints, set digests,
imports and removals (partners' queries of removed rows), and every answer
against the planted truth. The report ends 'N passed, M failed'.

The replicas dial each other through the proxies by their routes.json, in
any build; clock faults need a program built with the chaos tag
(go run -tags chaos ./cmd/xborder testnet chaos), without it they are
skipped and said so. docs/RELIABILITY.md has the runs made so far.`,
		Example: `  go run -tags chaos ./cmd/xborder testnet chaos --duration 2m --seed 1
  xborder testnet chaos --agencies 2 --replicas 3 --holdings 200 --duration 30s --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if duration <= 0 {
				return usageError("give --duration 10s or more", "testnet chaos: --duration %s", duration)
			}
			cfg, err := f.config(e, "chaos")
			if err != nil {
				return err
			}
			out := e.stdout
			if asJSON {
				out = e.stderr
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep := testnet.NewReport(out)
			res, err := testnet.Chaos(ctx, testnet.ChaosConfig{Config: cfg, Duration: duration, Faults: faults}, rep)
			rep.Finish()
			if asJSON {
				var doc struct {
					Report json.RawMessage      `json:"report"`
					Run    *testnet.ChaosResult `json:"run"`
				}
				var b bytes.Buffer
				if jerr := rep.WriteJSON(&b); jerr == nil {
					doc.Report, doc.Run = b.Bytes(), res
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					if jerr := enc.Encode(doc); jerr != nil && err == nil {
						err = jerr
					}
				}
			}
			if errors.Is(err, testnet.ErrFaultKind) {
				return usageError("give --faults "+strings.Join(testnet.FaultKinds, ","), "testnet chaos: %v", err)
			}
			if errors.Is(err, context.Canceled) {
				if _, failed := rep.Counts(); failed == 0 {
					return exitError(exitUnavailable, errors.New("testnet chaos: interrupted before the checks; every replica stopped, no port left listening"), "")
				}
			}
			if err != nil {
				return testnetError("chaos", err)
			}
			if _, failed := rep.Counts(); failed > 0 {
				return silentExit(exitInvalid)
			}
			return nil
		},
	}
	f.add(cmd)
	_ = cmd.Flags().Set("holdings", "1000")
	cmd.Flags().Lookup("holdings").DefValue = "1000"
	cmd.Flags().DurationVar(&duration, "duration", 3*time.Minute, "how long the workload and the nemesis run")
	cmd.Flags().StringSliceVar(&faults, "faults", nil, "fault kinds the nemesis draws from, comma-separated (default all: "+strings.Join(testnet.FaultKinds, ", ")+"; none for none)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "write the report, the schedule and every operation as one JSON document on stdout (the steps go to stderr)")
	return cmd
}

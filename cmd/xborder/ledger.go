package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

func init() { commands = append(commands, newLedgerCmd) }

const ledgerLong = `Ledger lists, shows, exports, prunes, verifies and checks the audit ledger.

list, show, export and prune are clients of the node's API: give --api URL
and --token-file FILE, or --dir DIR of the local node (its api.url and
admin.token). The policy in force decides who may: list and show need
read_ledger (auditors), export needs export, prune needs manage_policy
(admins). Every read is itself an entry of the ledger, committed before the
answer; --purpose says why you read, and is recorded in that entry.

show checks the entry's inclusion proof against the tree head the node
served, on this machine, before printing it: the leaf must encode the
header, the body must match its salted hash, and the proof must lead from
the leaf to the root. Otherwise it exits 5.

verify needs no node: it checks an export directory offline. An export
directory holds:

  checkpoint      the signed C2SP checkpoint (origin, size, root), a signed note
  ledger.pub      the note verifier key, name+hash+base64
  entries.jsonl   one entry a line in index order: index, leaf (base64 of the
                  exact bytes hashed into the tree), the decoded header, and
                  body and salt unless pruned

docs/ledger-format.md specifies the leaf bytes, so an export can be checked
with other tools too.`

const ledgerExample = `  xborder ledger list --type match_out --partner FR --since 2026-01-01 --token-file alice.token
  xborder ledger show 42 --purpose 'audit 2026/7' --token-file alice.token
  xborder ledger export --out audit-2026 --dir /var/lib/xborder
  xborder ledger verify audit-2026 --key /var/lib/xborder/agency.pub --trusted last-year/checkpoint
  xborder ledger prune --before 2021-01-01 --dir /var/lib/xborder`

func newLedgerCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ledger",
		Short:   "List, show, export, prune, verify and check the audit ledger",
		Long:    ledgerLong,
		Example: ledgerExample,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usageError("run 'xborder ledger --help' for usage", "ledger: give a subcommand: list, show, export, prune, verify or check")
		},
	}
	cmd.AddCommand(newLedgerListCmd(e, cf), newLedgerShowCmd(e, cf), newLedgerExportCmd(e, cf),
		newLedgerPruneCmd(e, cf), newLedgerVerifyCmd(e, cf), newLedgerCheckCmd(e))
	return cmd
}

// dirFlag adds the --dir flag of the verbs that talk to the node.
func dirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
}

func newLedgerListCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, since, until, purpose string
	var types []string
	var f ledger.Filter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--type T]... [--partner CC] [--case REF] [--actor NAME] [--since TIME] [--until TIME] [--limit N] [--json]",
		Short: "List the entries a filter selects, oldest first",
		Long: `List prints the entries the filter selects in index order, as a table or,
with --json, as a JSON array of entries. Filters combine: --type (repeatable:
match_out, match_result, match_in, denial, sync, import, remove, epoch, policy,
ledger_read, export, prune, partner, user, replica), --partner agency code,
--case and --actor (body fields: pruned entries never match them), --since and
--until (YYYY-MM-DD in UTC, RFC 3339, or a duration ago such as 24h), --after
INDEX and --limit N. The read is itself a ledger_read entry, and is listed
when the filter selects it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			for _, s := range types {
				for _, name := range strings.Split(s, ",") {
					t, err := ledger.ParseType(strings.TrimSpace(name))
					if err != nil {
						return usageError("run 'xborder ledger list --help' for the entry types", "ledger list: --type %q: %v", name, err)
					}
					f.Types = append(f.Types, t)
				}
			}
			var err error
			if f.From, err = parseWhen(since); err != nil {
				return usageError("give --since as YYYY-MM-DD, RFC 3339 or a duration ago such as 24h", "ledger list: --since %q: %v", since, err)
			}
			if f.To, err = parseWhen(until); err != nil {
				return usageError("give --until as YYYY-MM-DD, RFC 3339 or a duration ago such as 24h", "ledger list: --until %q: %v", until, err)
			}
			if f.Limit < 0 {
				return usageError("give --limit as a count, 0 for no limit", "ledger list: --limit %d is negative", f.Limit)
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			es, err := cl.Entries(c.Context(), purpose, f)
			if err != nil {
				return apiError(err)
			}
			if asJSON {
				return writeJSON(e, es)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INDEX\tTIME\tTYPE\tOUTCOME\tPARTNER\tKIND\tACTOR\tCASE")
			for _, en := range es {
				actor, caseRef := en.Body.Actor, en.Body.CaseRef
				if en.Pruned {
					actor, caseRef = "(pruned)", "(pruned)"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", en.Index, en.Time.UTC().Format(time.RFC3339),
					en.Type, en.Outcome, dash(en.Partner), dash(en.Kind), dash(actor), dash(caseRef))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "%d entries\n", len(es))
			return nil
		},
	}
	fl := cmd.Flags()
	dirFlag(cmd, &dir)
	fl.StringArrayVar(&types, "type", nil, "entry `TYPE` (repeatable, or comma-separated)")
	fl.StringVar(&f.Partner, "partner", "", "partner agency code `CC`")
	fl.StringVar(&f.Case, "case", "", "case reference `REF` (body)")
	fl.StringVar(&f.Actor, "actor", "", "actor `NAME` (body), e.g. user:alice")
	fl.StringVar(&since, "since", "", "entries at or after `TIME`")
	fl.StringVar(&until, "until", "", "entries before `TIME`")
	fl.Uint64Var(&f.After, "after", 0, "entries with index at least `INDEX`")
	fl.IntVar(&f.Limit, "limit", 0, "at most `N` entries (0: no limit)")
	fl.StringVar(&purpose, "purpose", "", "why you read (`TEXT`), recorded in the read entry")
	fl.BoolVar(&asJSON, "json", false, "print a JSON array of entries")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads a time as YYYY-MM-DD (UTC), RFC 3339, or a duration ago.
// An empty string is the zero time: no bound.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("a negative duration")
		}
		return time.Now().Add(-d), nil
	}
	return parseDate(s)
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("not YYYY-MM-DD nor RFC 3339")
	}
	return t, nil
}

func writeJSON(e *env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func newLedgerShowCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, purpose string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show INDEX [--json]",
		Short: "Show one entry and check its inclusion proof locally",
		Long: `Show prints one entry with its RFC 6962 inclusion proof in the tree the node
serves. Before printing, it checks on this machine that the leaf encodes the
header, that the body (unless pruned) matches its salted hash, and that the
proof leads from the leaf to the served root; if any check fails it exits 5.
With --json it prints the entry and proof as the API serves them.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("run 'xborder ledger show --help' for usage", "ledger show: give one entry index")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			index, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return usageError("give the entry's index, a number from 'xborder ledger list'", "ledger show: index %q is not a number", args[0])
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			p, err := cl.Entry(c.Context(), purpose, index)
			if err != nil {
				if errors.Is(err, httpapi.ErrNotFound) {
					return exitError(exitInvalid, err, "list the entries with 'xborder ledger list'")
				}
				return apiError(err)
			}
			root, err := checkEntryProof(index, p)
			if err != nil {
				return exitError(exitVerify, err, "the node served an entry that is not in its tree: keep this output and tell the agency's operators")
			}
			if asJSON {
				return writeJSON(e, p)
			}
			printEntry(e, p.Entry)
			fmt.Fprintf(e.stdout, "proof: entry %d is in the tree of %d entries with root %s (%d hashes, checked locally)\n",
				index, p.Size, base64.StdEncoding.EncodeToString(root[:]), len(p.Proof))
			return nil
		},
	}
	dirFlag(cmd, &dir)
	cmd.Flags().StringVar(&purpose, "purpose", "", "why you read (`TEXT`), recorded in the read entry")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entry and its proof as JSON")
	return cmd
}

// checkEntryProof checks a served entry against its own proof: the entry is
// the one asked for, its leaf encodes its header, its body matches the
// body hash, and the RFC 6962 inclusion proof leads from the leaf to the
// served root. It returns the root.
func checkEntryProof(index uint64, p httpapi.EntryProof) (tlog.Hash, error) {
	var root tlog.Hash
	fail := func(format string, args ...any) (tlog.Hash, error) {
		return tlog.Hash{}, fmt.Errorf("check entry %d: "+format, append([]any{index}, args...)...)
	}
	if p.Entry.Index != index {
		return fail("the node sent entry %d", p.Entry.Index)
	}
	if index >= p.Size {
		return fail("not in a tree of %d entries", p.Size)
	}
	if !bytes.Equal(format.EncodeLeaf(&p.Entry.Header), p.Leaf) {
		return fail("the header does not match the leaf")
	}
	if !p.Entry.Pruned && format.BodyHash(p.Entry.Salt, p.Entry.Body) != p.Entry.BodyHash {
		return fail("the body does not match its hash in the leaf")
	}
	rb, err := base64.StdEncoding.DecodeString(p.Root)
	if err != nil || len(rb) != tlog.HashSize {
		return fail("the root %q is not a base64 SHA-256 hash", p.Root)
	}
	copy(root[:], rb)
	proof := make(tlog.RecordProof, len(p.Proof))
	for i, s := range p.Proof {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return fail("proof hash %d is not a base64 SHA-256 hash", i)
		}
		copy(proof[i][:], b)
	}
	if err := tlog.CheckRecord(proof, int64(p.Size), root, int64(index), tlog.RecordHash(p.Leaf)); err != nil {
		return fail("the inclusion proof does not lead to the root of %d entries: %v", p.Size, err)
	}
	return root, nil
}

// printEntry prints an entry one field a line, leaving out empty ones.
func printEntry(e *env, en ledger.Entry) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 1, ' ', 0)
	line := func(k, v string) {
		if v != "" && v != "0" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	fmt.Fprintf(tw, "index:\t%d\n", en.Index)
	line("time", en.Time.UTC().Format(time.RFC3339Nano))
	line("type", en.Type.String())
	line("outcome", en.Outcome.String())
	line("request", en.RequestID)
	line("agency", en.Agency)
	line("partner", en.Partner)
	line("kind", en.Kind)
	line("epoch", u(en.Epoch))
	line("set version", u(en.SetVersion))
	line("padded size", u(en.PaddedSize))
	line("hits", u(en.HitCount))
	line("count", u(en.Count))
	line("policy", en.PolicyVersion)
	line("handling", en.Handling)
	line("replica", en.Replica)
	line("urgency", strconv.Itoa(int(en.Urgency)))
	line("mode", en.Mode)
	line("reaches", en.Reaches)
	if en.RequestSigDigest != (ledger.Digest{}) {
		line("request sig", fmt.Sprintf("%x", en.RequestSigDigest[:]))
	}
	if en.Digest != (ledger.Digest{}) {
		line("digest", fmt.Sprintf("%x", en.Digest[:]))
	}
	line("body hash", fmt.Sprintf("%x", en.BodyHash[:]))
	if en.Pruned {
		line("body", "pruned after the retention period")
	} else {
		line("actor", en.Body.Actor)
		line("approver", en.Body.Approver)
		line("purpose", en.Body.Purpose)
		line("legal basis", en.Body.LegalBasis)
		line("offence", en.Body.Offence)
		line("case", en.Body.CaseRef)
	}
	tw.Flush()
}

func newLedgerExportCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, out string
	cmd := &cobra.Command{
		Use:   "export --out DIR",
		Short: "Write a signed, verifiable export of the ledger to DIR",
		Long: `Export asks the node for the whole ledger and writes it as an export
directory (checkpoint, ledger.pub, entries.jsonl) to --out, after checking
the checkpoint's signature with the key the node sent. The export is itself
an entry, covered by the checkpoint. Check the export with 'xborder ledger
verify DIR --key agency.pub', with the agency key obtained out of band.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return usageError("give --out DIR, where the export goes", "ledger export: no --out given")
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			x, err := cl.Export(c.Context())
			if err != nil {
				return apiError(err)
			}
			cp, err := format.ParseCheckpoint([]byte(x.Checkpoint), strings.TrimSpace(x.PublicKey))
			if err != nil {
				return exitError(exitVerify, fmt.Errorf("ledger export: %w", err), "the node sent a checkpoint its own key does not verify; tell the agency's operators")
			}
			if err := x.WriteDir(out); err != nil {
				return exitError(exitInvalid, err, "choose a directory you may write to")
			}
			fmt.Fprintf(e.stdout, "exported %d entries of %s to %s\n", cp.Size, cp.Origin, out)
			fmt.Fprintf(e.stdout, "checkpoint root %s\n", base64.StdEncoding.EncodeToString(cp.Root[:]))
			return nil
		},
	}
	dirFlag(cmd, &dir)
	cmd.Flags().StringVar(&out, "out", "", "`DIR`ectory to write the export to (created; its files are replaced)")
	return cmd
}

func newLedgerPruneCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, before string
	cmd := &cobra.Command{
		Use:   "prune --before DATE",
		Short: "Delete entry bodies older than DATE (at least the retention period ago)",
		Long: `Prune deletes the bodies and salts of entries older than DATE (YYYY-MM-DD, UTC,
or RFC 3339), as the retention rules require. Leaves, tree and proofs stay
valid, and an export still verifies. DATE must be at least the retention
period ago: the limits file's retention once a policy is applied, five years
before. The pruning is itself an entry. Only users the
policy lets manage_policy (admins) may prune.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if before == "" {
				return usageError("give --before DATE, as YYYY-MM-DD", "ledger prune: no --before given")
			}
			t, err := parseDate(before)
			if err != nil {
				return usageError("give --before as YYYY-MM-DD or RFC 3339", "ledger prune: --before %q: %v", before, err)
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			r, err := cl.Prune(c.Context(), t)
			if errors.Is(err, httpapi.ErrBadRequest) && strings.Contains(err.Error(), "retention") {
				return exitError(exitInvalid, err, "choose an earlier --before date")
			}
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "pruned %d bodies and records before %s; prune entry at index %d\n",
				r.Deleted, t.UTC().Format(time.RFC3339), r.Index)
			return nil
		},
	}
	dirFlag(cmd, &dir)
	cmd.Flags().StringVar(&before, "before", "", "prune bodies of entries older than this `DATE` (YYYY-MM-DD, UTC)")
	return cmd
}

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/ledger"
)

func init() { commands = append(commands, newLedgerCmd) }

const ledgerLong = `Ledger exports, verifies and prunes an agency's audit ledger.

Until the node exists, export and prune open a stopped single-replica ledger
directory (--dir) themselves; they need the agency key (--key, a PEM
"PRIVATE KEY" file) to sign the checkpoint. Both are recorded in the ledger
as entries. verify needs no node and no ledger directory: it checks an
export directory offline.

An export directory holds:

  checkpoint      the signed C2SP checkpoint (origin, size, root), a signed note
  ledger.pub      the note verifier key, name+hash+base64
  entries.jsonl   one entry a line in index order: index, leaf (base64 of the
                  exact bytes hashed into the tree), the decoded header, and
                  body and salt unless pruned

docs/ledger-format.md specifies the leaf bytes, so an export can be checked
with other tools too.`

const ledgerExample = `  xborder ledger export --dir /var/lib/xborder/ledger --key agency.key --out audit-2026
  xborder ledger verify audit-2026 --key agency.pub --trusted last-year/checkpoint
  xborder ledger prune --dir /var/lib/xborder/ledger --key agency.key --before 2021-01-01`

func newLedgerCmd(e *env, _ *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ledger",
		Short:   "Export, verify and prune the audit ledger",
		Long:    ledgerLong,
		Example: ledgerExample,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usageError("run 'xborder ledger --help' for usage", "ledger: give a subcommand: export, verify or prune")
		},
	}
	cmd.AddCommand(newLedgerExportCmd(e), newLedgerVerifyCmd(e), newLedgerPruneCmd(e))
	return cmd
}

// defaultActor names the person running the CLI in the entries it appends.
func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// openLedgerDir opens a stopped ledger directory with the agency key.
func openLedgerDir(ctx context.Context, dir, keyFile string) (*ledger.Ledger, error) {
	if dir == "" {
		return nil, usageError("give --dir LEDGERDIR, the ledger directory of a stopped replica", "no --dir given")
	}
	if keyFile == "" {
		return nil, usageError("give --key FILE, the agency's Ed25519 key as a PEM \"PRIVATE KEY\" file", "no --key given")
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		return nil, exitError(exitInvalid, fmt.Errorf("open ledger %s: not a ledger directory", dir),
			"give the directory the node keeps its ledger in (it holds state/ and snapshots/)")
	}
	key, err := ledger.LoadKey(keyFile)
	if err != nil {
		return nil, exitError(exitInvalid, err, "give the agency key as a PEM \"PRIVATE KEY\" (PKCS #8) file")
	}
	l, err := ledger.Open(ctx, ledger.Config{Dir: dir, Signer: key})
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, ledger.ErrCorrupt):
		return nil, exitError(exitVerify, err, "")
	case errors.Is(err, ledger.ErrInvalid):
		return nil, exitError(exitInvalid, err, "check that --key is this agency's key and --dir its ledger")
	case strings.Contains(err.Error(), "Cannot acquire directory lock"):
		return nil, exitError(exitUnavailable, err, "stop the node that uses this directory first")
	}
	return nil, exitError(exitUnavailable, err, "")
}

func newLedgerExportCmd(e *env) *cobra.Command {
	var dir, keyFile, out, actor string
	cmd := &cobra.Command{
		Use:   "export --dir LEDGERDIR --key FILE --out DIR",
		Short: "Write a signed, verifiable export of the ledger to DIR",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return usageError("give --out DIR, where the export goes", "ledger export: no --out given")
			}
			l, err := openLedgerDir(c.Context(), dir, keyFile)
			if err != nil {
				return err
			}
			cp, err := l.Export(c.Context(), out, actor)
			if cerr := l.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				return ledgerError(err)
			}
			fmt.Fprintf(e.stdout, "exported %d entries of %s to %s\n", cp.Size, cp.Origin, out)
			fmt.Fprintf(e.stdout, "checkpoint root %s\n", cp.Root)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "ledger directory of a stopped replica")
	f.StringVar(&keyFile, "key", "", "agency Ed25519 key, a PEM \"PRIVATE KEY\" file")
	f.StringVar(&out, "out", "", "directory to write the export to (created)")
	f.StringVar(&actor, "actor", defaultActor(), "who exports, as recorded in the export entry")
	return cmd
}

func newLedgerPruneCmd(e *env) *cobra.Command {
	var dir, keyFile, before, actor string
	cmd := &cobra.Command{
		Use:   "prune --dir LEDGERDIR --key FILE --before DATE",
		Short: "Delete entry bodies older than DATE (at least the retention period ago)",
		Long: `Prune deletes the bodies and salts of entries older than DATE (YYYY-MM-DD, UTC,
or RFC 3339), as the retention rules require. Leaves, tree and proofs stay
valid, and an export still verifies. DATE must be at least the retention
period (five years) ago. The pruning is itself an entry.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if before == "" {
				return usageError("give --before DATE, as YYYY-MM-DD", "ledger prune: no --before given")
			}
			t, err := parseDate(before)
			if err != nil {
				return usageError("give --before as YYYY-MM-DD or RFC 3339", "ledger prune: --before %q: %v", before, err)
			}
			l, err := openLedgerDir(c.Context(), dir, keyFile)
			if err != nil {
				return err
			}
			r, n, err := l.Prune(c.Context(), t, actor)
			if cerr := l.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if errors.Is(err, ledger.ErrRetention) {
				return exitError(exitInvalid, err, "choose an earlier --before date")
			}
			if err != nil {
				return ledgerError(err)
			}
			fmt.Fprintf(e.stdout, "pruned %d bodies and records before %s; prune entry at index %d\n",
				n, t.UTC().Format(time.RFC3339), r.Index)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "ledger directory of a stopped replica")
	f.StringVar(&keyFile, "key", "", "agency Ed25519 key, a PEM \"PRIVATE KEY\" file")
	f.StringVar(&before, "before", "", "prune bodies of entries older than this date (YYYY-MM-DD, UTC)")
	f.StringVar(&actor, "actor", defaultActor(), "who prunes, as recorded in the prune entry")
	return cmd
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// ledgerError maps the ledger's errors to exit codes.
func ledgerError(err error) error {
	switch {
	case errors.Is(err, ledger.ErrNoQuorum):
		return exitError(exitUnavailable, err, "the ledger has no leader; try again")
	case errors.Is(err, ledger.ErrCorrupt):
		return exitError(exitVerify, err, "")
	}
	return exitError(exitInvalid, err, "")
}

func newLedgerVerifyCmd(e *env) *cobra.Command {
	var keyFile, trustedFile string
	cmd := &cobra.Command{
		Use:   "verify DIR [--key FILE] [--trusted CHECKPOINT]",
		Short: "Check an export offline: signature, tree, every leaf, header and body",
		Long: `Verify checks an export directory offline. It checks the checkpoint's
signature, recomputes the Merkle tree from the leaves and compares its size and
root with the checkpoint, checks every decoded header and body against its leaf,
and, with --trusted, proves that the export extends an earlier checkpoint you
kept. It prints what it checked. On any mismatch it exits 5 naming the first bad
entry index.

--key is the agency's key obtained out of band: its note verifier key
(name+hash+base64), or a PEM "PUBLIC KEY" or "PRIVATE KEY" file. Without --key
the key in DIR/ledger.pub is used, which detects damage but not a forged export.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("run 'xborder ledger verify --help' for usage", "ledger verify: give one export directory")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			dir := args[0]
			note, err := os.ReadFile(filepath.Join(dir, ledger.ExportCheckpoint))
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("ledger verify: %w", err), "give a directory written by 'xborder ledger export'")
			}
			origin, _, _ := strings.Cut(string(note), "\n")
			var vkey string
			if keyFile == "" {
				b, err := os.ReadFile(filepath.Join(dir, ledger.ExportPublicKey))
				if err != nil {
					return exitError(exitInvalid, fmt.Errorf("ledger verify: %w", err), "give --key FILE")
				}
				vkey = strings.TrimSpace(string(b))
				fmt.Fprintf(e.stdout, "key: %s from %s (no --key given: this detects damage, not a forged export)\n",
					vkey, filepath.Join(dir, ledger.ExportPublicKey))
			} else {
				if vkey, err = readVerifierKey(keyFile, origin); err != nil {
					return exitError(exitInvalid, err, "give the note verifier key (name+hash+base64) or a PEM key file")
				}
				fmt.Fprintf(e.stdout, "key: %s from %s\n", vkey, keyFile)
			}
			var trusted []byte
			if trustedFile != "" {
				if trusted, err = os.ReadFile(trustedFile); err != nil {
					return exitError(exitInvalid, fmt.Errorf("ledger verify: %w", err), "give a checkpoint file you kept from an earlier export")
				}
			}
			rep, err := ledger.Verify(dir, vkey, trusted)
			if err != nil {
				var ve *ledger.VerifyError
				if errors.As(err, &ve) {
					hint := "the export does not match its signed checkpoint"
					if ve.Index >= 0 {
						hint = fmt.Sprintf("entry %d (and possibly later ones) was altered, removed or damaged after signing", ve.Index)
					}
					return exitError(exitVerify, err, hint)
				}
				return exitError(exitInvalid, err, "")
			}
			fmt.Fprintf(e.stdout, "checkpoint: %s, %d entries, signature ok\n", rep.Origin, rep.Size)
			fmt.Fprintf(e.stdout, "entries: %d leaves hashed, %d headers match their leaves, %d bodies match their hashes, %d pruned\n",
				rep.Size, rep.Size, rep.Bodies, rep.Pruned)
			fmt.Fprintf(e.stdout, "tree: size %d and root %s match the checkpoint\n", rep.Size, rep.Root)
			if trusted != nil {
				fmt.Fprintf(e.stdout, "trusted: consistent with the trusted checkpoint of %d entries\n", rep.TrustedSize)
			}
			fmt.Fprintln(e.stdout, "ok")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "agency key obtained out of band: verifier key, or PEM public or private key file")
	f.StringVar(&trustedFile, "trusted", "", "a checkpoint file kept from an earlier export, to prove consistency with")
	return cmd
}

// readVerifierKey reads a note verifier key from file: either the key text
// itself or a PEM Ed25519 key, named by origin.
func readVerifierKey(file, origin string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("ledger verify: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var pub ed25519.PublicKey
	switch blk.Type {
	case "PRIVATE KEY":
		k, err := ledger.ParseKey(b)
		if err != nil {
			return "", err
		}
		pub = k.Public().(ed25519.PublicKey)
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return "", fmt.Errorf("ledger verify: key file %s: %w", file, err)
		}
		var ok bool
		if pub, ok = k.(ed25519.PublicKey); !ok {
			return "", fmt.Errorf("ledger verify: key file %s: a %T, want Ed25519", file, k)
		}
	default:
		return "", fmt.Errorf("ledger verify: key file %s: PEM block %q, want PUBLIC KEY or PRIVATE KEY", file, blk.Type)
	}
	return ledger.VerifierKey(origin, pub)
}

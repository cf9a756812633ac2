package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

func newLedgerVerifyCmd(e *env, cf *clientFlags) *cobra.Command {
	var keyFile, trustedFile, witnessDir string
	var witnesses []string
	var quorum int
	cmd := &cobra.Command{
		Use:   "verify DIR [--key FILE] [--trusted CHECKPOINT] [--witness KEY]... [--witnesses-from-dir DIR] [--quorum N]",
		Short: "Check an export offline: signature, tree, every leaf, header and body",
		Long: `Verify checks an export directory offline. It checks the checkpoint's
signature, recomputes the Merkle tree from the leaves and compares its size and
root with the checkpoint, checks every decoded header and body against its leaf,
and, with --trusted, proves that the export extends an earlier checkpoint you
kept. It prints what it checked. On any mismatch it exits 5 naming the first bad
entry index.

--key is the agency's key obtained out of band: its note verifier key
(name+hash+base64), or a PEM "PUBLIC KEY" or "PRIVATE KEY" file. Without --key
the key in DIR/ledger.pub is used, which detects damage but not a forged export.

--quorum N requires at least N valid cosignatures on the exported checkpoint
from distinct partner witnesses (C2SP tlog-cosignature/v1, docs/witness.md):
the partners saw this tree and found it consistent with every earlier one
they cosigned, so the agency cannot have rewritten it unseen. The witnesses'
keys are --witness KEY (repeatable; a verifier key name+hash+base64, or a file
holding one) and, with --witnesses-from-dir DIR, the witness keys of the
partner cards pinned by the node whose data directory is DIR (read through its
API, as --dir does for the other verbs). Fewer than N exits 5.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("run 'xborder ledger verify --help' for usage", "ledger verify: give one export directory")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			dir := args[0]
			note, err := os.ReadFile(filepath.Join(dir, format.ExportCheckpoint))
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("ledger verify: %w", err), "give a directory written by 'xborder ledger export'")
			}
			origin, _, _ := strings.Cut(string(note), "\n")
			var vkey string
			if keyFile == "" {
				b, err := os.ReadFile(filepath.Join(dir, format.ExportPublicKey))
				if err != nil {
					return exitError(exitInvalid, fmt.Errorf("ledger verify: %w", err), "give --key FILE")
				}
				vkey = strings.TrimSpace(string(b))
				fmt.Fprintf(e.stdout, "key: %s from %s (no --key given: this detects damage, not a forged export)\n",
					vkey, filepath.Join(dir, format.ExportPublicKey))
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
			wkeys, err := witnessKeys(c, cf, witnesses, witnessDir, origin)
			if err != nil {
				return err
			}
			if quorum > len(wkeys) {
				return usageError("give at least --quorum witness keys with --witness or --witnesses-from-dir",
					"ledger verify: --quorum %d with %d witness keys", quorum, len(wkeys))
			}
			rep, err := format.VerifyQuorum(os.DirFS(dir), vkey, trusted, wkeys, quorum)
			if err != nil {
				var ve *format.VerifyError
				if errors.As(err, &ve) {
					hint := "the export does not match its signed checkpoint"
					if strings.Contains(ve.Reason, "cosignatures") {
						hint = "the partners' witnesses did not vouch for this tree: it may be a rewritten or rolled-back ledger, or the export predates witnessing"
					}
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
			if quorum > 0 {
				fmt.Fprintf(e.stdout, "witnesses: %d of %d cosigned (%s), quorum %d\n", len(rep.Cosigners), len(wkeys),
					strings.Join(rep.Cosigners, ", "), quorum)
			}
			fmt.Fprintln(e.stdout, "ok")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "agency key obtained out of band: verifier key, or PEM public or private key file")
	f.StringVar(&trustedFile, "trusted", "", "a checkpoint file kept from an earlier export, to prove consistency with")
	f.StringArrayVar(&witnesses, "witness", nil, "a witness's cosignature verifier `KEY` (name+hash+base64) or a file holding one; repeatable")
	f.StringVar(&witnessDir, "witnesses-from-dir", "", "take the witness keys of the partners pinned by the node of data `DIR`ectory")
	f.IntVar(&quorum, "quorum", 0, "require `N` valid cosignatures from distinct witnesses (0: none)")
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
	return format.VerifierKey(origin, pub)
}

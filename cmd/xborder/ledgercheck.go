package main

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/node"
)

func newLedgerCheckCmd(e *env) *cobra.Command {
	var dir, keyFile string
	cmd := &cobra.Command{
		Use:   "check (--dir DIR | LEDGER_DIR...) [--storage-key FILE]",
		Short: "Check a stopped replica's ledger in full, offline",
		Long: `Check reads a stopped replica's ledger directory and checks all of it: every
entry's leaf against its hash and its body, every tree hash rebuilt from the
leaves, the last signed checkpoint (against the agency key the directory
holds) and the tree head the last start check recorded. A replica checks at
start only what was added since that head (docs/ledger.md, "Crash points");
run this for the rest, for example after a disk fault or before a backup.

--dir DIR checks the node's two groups, DIR/audit and DIR/data, with the
node's storage key; or name ledger directories, with --storage-key FILE when
they are encrypted. The node must be stopped: the check opens the databases
read-only and fails while a replica holds them. It also says when the next
start will restore the state from the latest snapshot (a restore cut short,
or a state behind its snapshot). Any disagreement exits 5, naming the first
bad entry.`,
		Example: `  xborder ledger check --dir /var/lib/xborder
  xborder ledger check /var/lib/xborder/audit --storage-key /var/lib/xborder/storage.key`,
		RunE: func(c *cobra.Command, args []string) error {
			if (dir == "") == (len(args) == 0) {
				return usageError("run 'xborder ledger check --help' for usage", "ledger check: give --dir DIR or ledger directories, not both")
			}
			if dir != "" {
				for _, g := range []string{node.GroupAudit, node.GroupData} {
					args = append(args, filepath.Join(dir, g))
				}
				if keyFile == "" {
					p := filepath.Join(dir, node.StorageKeyFile)
					if fc, err := node.LoadConfig(dir); err == nil {
						p = fc.StorageKeyPath(dir, os.Getenv("CREDENTIALS_DIRECTORY"))
					}
					if _, err := os.Stat(p); err == nil {
						keyFile = p
					}
				}
			}
			var key []byte
			if keyFile != "" {
				var err error
				if key, err = readStorageKey(keyFile); err != nil {
					return exitError(exitInvalid, fmt.Errorf("ledger check: %w", err), "give the node's storage.key")
				}
			}
			for _, d := range args {
				if _, err := os.Stat(filepath.Join(d, "state")); errors.Is(err, fs.ErrNotExist) {
					return exitError(exitInvalid, fmt.Errorf("ledger check: %s holds no ledger", d), "give a ledger directory, or the node's data directory as --dir")
				}
				rep, err := ledger.Check(c.Context(), d, key)
				if errors.Is(err, ledger.ErrCorrupt) {
					return exitError(exitVerify, err, "restore this replica's directory from a backup, or remove it and add the replica again so that it re-joins from a healthy one")
				}
				if err != nil {
					return exitError(exitInvalid, fmt.Errorf("ledger check: %w", err), "stop the replica first: the check reads its directory offline")
				}
				fmt.Fprintf(e.stdout, "%s: %d entries, root %s, signed checkpoint at %d, start check verified to %d, Raft index %d applied\n",
					d, rep.Size, base64.StdEncoding.EncodeToString(rep.Root[:]), rep.Checkpoint, rep.Verified, rep.Applied)
				if rep.Recover != "" {
					fmt.Fprintf(e.stdout, "%s: %s: the next start restores the state from the latest snapshot\n", d, rep.Recover)
				}
			}
			fmt.Fprintln(e.stdout, "ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the stopped node: checks its audit and data groups")
	cmd.Flags().StringVar(&keyFile, "storage-key", "", "`FILE` holding the storage key in hex (default: DIR/storage.key)")
	return cmd
}

// readStorageKey reads a 32-byte key written in hex, as node init writes
// storage.key.
func readStorageKey(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("%s: not 32 bytes in hex", file)
	}
	return k, nil
}

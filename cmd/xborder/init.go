package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/node"
)

func init() { commands = append(commands, newInitCmd) }

const initLong = `Init creates the data directory of a new agency's first replica:

  config.yaml   every setting, with a comment above each
  p2p.key       the replica's libp2p Ed25519 identity             (secret)
  agency.key    the agency's Ed25519 signing key, PEM PKCS #8     (secret)
  agency.pub    its note verifier key, for 'xborder ledger verify'
  epoch.seed    the first OPRF epoch seed, 32 random bytes        (secret)
  storage.key   the at-rest key of the databases and Raft snapshots (secret;
                --storage-key-file PATH writes it there instead, and
                config.yaml names it: keep it apart from the data)
  ca.crt        the agency CA for replica TLS
  ca.key        its key                                           (secret)
  replica.crt   this replica's TLS certificate
  replica.key   its key                                           (secret)
  admin.token   the first admin's API token                       (secret)

Secret files have mode 0600; the node refuses to start when one of them can
be read by group or others. Without --dir, the directory is
$XDG_DATA_HOME/xborder (or ~/.local/share/xborder).

The listen addresses default to port 0 on 127.0.0.1: 'node run' binds free
ports at its first start, records them in DIR/listen.json and binds the same
raft and p2p ports again at later starts (the API gets a free port each time,
named in DIR/api.url). That suits one machine. A deployment gives fixed,
reachable addresses, so that firewalls and partners' cards stay stable:
--listen-raft 10.0.0.1:7000 --listen-p2p /ip4/10.0.0.1/tcp/4001
--listen-api 127.0.0.1:7070 (or edit config.yaml before the first start).`

func newInitCmd(e *env, _ *clientFlags) *cobra.Command {
	var dir, agency, name, replica, keyFile string
	var listen node.ListenConfig
	cmd := &cobra.Command{
		Use:     "init --agency CC --name NAME [--dir DIR] [--listen-raft ADDR] [--listen-p2p ADDR] [--listen-api ADDR] [--storage-key-file PATH]",
		Short:   "Create the data directory, keys and config of a new agency's node",
		Long:    initLong,
		Example: "  xborder init --agency GB --name 'National Crime Agency' --dir /var/lib/xborder",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if agency == "" || name == "" {
				return usageError("give --agency CC (ISO 3166 alpha-2) and --name NAME", "init: missing --agency or --name")
			}
			if dir == "" {
				d, err := defaultDataDir()
				if err != nil {
					return err
				}
				dir = d
			}
			res, err := node.Init(node.InitConfig{Dir: dir, Agency: agency, Name: name, Replica: replica, Listen: listen,
				StorageKeyFile: keyFile})
			if err != nil {
				switch {
				case errors.Is(err, node.ErrExists):
					if _, serr := os.Stat(filepath.Join(dir, node.ConfigFile)); serr != nil {
						return exitError(exitInvalid, err, "")
					}
					return exitError(exitInvalid, err, "the directory holds a node already: run 'xborder node run --dir "+dir+"'")
				case errors.Is(err, node.ErrConfig):
					return exitError(exitInvalid, err, "")
				}
				return exitError(exitInvalid, err, "check that the directory can be written")
			}
			printInit(e, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory to create (default $XDG_DATA_HOME/xborder)")
	cmd.Flags().StringVar(&agency, "agency", "", "agency code, ISO 3166 alpha-2 (e.g. GB)")
	cmd.Flags().StringVar(&name, "name", "", "agency name, as the agency card shows it")
	cmd.Flags().StringVar(&replica, "replica", "", "replica ID (default r1)")
	cmd.Flags().StringVar(&listen.Raft, "listen-raft", "", "replica transport `ADDR`ess host:port (default "+node.DefaultListenRaft+")")
	cmd.Flags().StringVar(&listen.P2P, "listen-p2p", "", "libp2p multi`ADDR`ess (default "+node.DefaultListenP2P+")")
	cmd.Flags().StringVar(&keyFile, "storage-key-file", "", "write the storage key to `PATH` (outside DIR) instead of DIR/storage.key")
	cmd.Flags().StringVar(&listen.API, "listen-api", "", "HTTP API `ADDR`ess host:port (default "+node.DefaultListenAPI+")")
	return cmd
}

func printInit(e *env, res *node.InitResult) {
	fmt.Fprintf(e.stdout, "initialised %s (%s) in %s\n", res.Config.Agency, res.Config.Name, res.Dir)
	fmt.Fprintf(e.stdout, "agency key fingerprint: %s\n", res.Fingerprint)
	fmt.Fprintf(e.stdout, "admin token: %s (keep it secret)\n", res.AdminTokenFile)
	fmt.Fprintf(e.stdout, "storage key: %s (keep it secret, and a backup apart from the data)\n", res.StorageKeyFile)
	if _, port, _ := net.SplitHostPort(res.Config.Listen.API); port == "0" {
		fmt.Fprintf(e.stdout, "API: a free port on %s, named in %s once the node runs\n", strings.TrimSuffix(res.Config.Listen.API, ":0"), filepath.Join(res.Dir, node.APIURLFile))
	} else {
		fmt.Fprintf(e.stdout, "API: %s\n", res.Config.APIURL())
	}
	fmt.Fprintf(e.stdout, "next: xborder node run --dir %s\n", res.Dir)
}

// defaultDataDir returns $XDG_DATA_HOME/xborder, or ~/.local/share/xborder.
func defaultDataDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "xborder"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", exitError(exitUsage, fmt.Errorf("find the default data directory: %w", err), "give --dir DIR")
	}
	return filepath.Join(home, ".local", "share", "xborder"), nil
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/node"
	"github.com/xborder/xborder/node/host"
)

func init() { commands = append(commands, newNodeCmd, newReplicaCmd) }

const nodeLong = `Node runs one replica of the agency's node, or asks a running one for its
status.

'node run' starts the libp2p host, the audit and data Raft groups over one
mutual-TLS transport, and the HTTP API on 127.0.0.1; it runs until SIGINT or
SIGTERM and then shuts down cleanly. With no --dir it uses the default data
directory ($XDG_DATA_HOME/xborder or ~/.local/share/xborder), creating it on
first run with --agency and --name (default XX, "xborder node").

Verbs that talk to a node (user, card, partner, policy apply, node status)
find it by --api URL and --token-file FILE; with --dir DIR instead they read
the URL the running node wrote to DIR/api.url and use DIR/admin.token. An API
bound off loopback speaks TLS with the replica's certificate; clients trust
the agency CA in DIR/ca.crt, or the file XBORDER_CA_FILE names.`

func newNodeCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a replica of the node, or show its status",
		Long:  nodeLong,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder node --help' for usage", "node: give a subcommand: run or status")
		},
	}
	cmd.AddCommand(newNodeRunCmd(e), newNodeStatusCmd(e, cf))
	return cmd
}

// libp2pLogOnce makes libp2p log through the node's handler, once per
// process.
var libp2pLogOnce sync.Once

func newNodeRunCmd(e *env) *cobra.Command {
	var dir, agency, name, join, keyFile string
	var listen node.ListenConfig
	var syncInterval time.Duration
	cmd := &cobra.Command{
		Use:     "run [--dir DIR] [--join BUNDLE [--storage-key-file PATH]] [--listen-raft ADDR] [--listen-p2p ADDR] [--listen-api ADDR] [--sync-interval DURATION]",
		Short:   "Run one replica until interrupted",
		Example: "  xborder node run --dir /var/lib/xborder",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if join != "" {
				if dir == "" {
					return usageError("give --dir DIR, where the new replica keeps its data", "node run --join: no --dir given")
				}
				if err := initFromBundle(e, dir, join, keyFile, listen); err != nil {
					return err
				}
			} else if keyFile != "" {
				return usageError("give --storage-key-file with --join only; a replica that exists reads storage_key_file of its config.yaml",
					"node run: --storage-key-file without --join")
			}
			if dir == "" {
				d, err := defaultDataDir()
				if err != nil {
					return err
				}
				dir = d
				if _, err := os.Stat(filepath.Join(dir, node.ConfigFile)); errors.Is(err, os.ErrNotExist) {
					res, err := node.Init(node.InitConfig{Dir: dir, Agency: agency, Name: name})
					if err != nil {
						return exitError(exitInvalid, err, "")
					}
					printInit(e, res)
				}
			}
			fc, err := node.LoadConfig(dir)
			if err != nil {
				return exitError(exitInvalid, err, "run 'xborder init --dir "+dir+"' first, or fix config.yaml")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(orDefault(fc.LogLevel, "info"))); err != nil {
				return exitError(exitInvalid, err, "fix log_level in config.yaml")
			}
			h := slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})
			libp2pLogOnce.Do(func() { host.SetLibp2pLogHandler(h) })
			if c.Flags().Changed("sync-interval") && syncInterval < time.Second {
				return usageError("give --sync-interval of at least 1s, such as 1m", "node run: --sync-interval %s", syncInterval)
			}
			n, err := node.Open(ctx, node.Config{Dir: dir, Listen: listen, Logger: slog.New(h), SyncInterval: syncInterval,
				CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY")})
			if err != nil {
				if errors.Is(err, node.ErrSecretMode) {
					return exitError(exitInvalid, err, "no one but the node's user may read its secret files")
				}
				return exitError(exitUnavailable, err, "")
			}
			fmt.Fprintf(e.stdout, "node %s/%s running: API %s, peer %s\n", fc.Agency, fc.ReplicaID(), n.APIURL(), n.PeerID())
			<-ctx.Done()
			if err := n.Close(); err != nil {
				return exitError(exitUnavailable, fmt.Errorf("stop node: %w", err), "")
			}
			fmt.Fprintln(e.stdout, "node stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory (default $XDG_DATA_HOME/xborder, created on first run)")
	cmd.Flags().StringVar(&listen.Raft, "listen-raft", "", "replica transport `ADDR`ess host:port (default: config.yaml)")
	cmd.Flags().StringVar(&listen.P2P, "listen-p2p", "", "libp2p multi`ADDR`ess (default: config.yaml)")
	cmd.Flags().StringVar(&listen.API, "listen-api", "", "HTTP API `ADDR`ess host:port (default: config.yaml)")
	cmd.Flags().StringVar(&join, "join", "", "create --dir from the join `BUNDLE` of 'xborder replica add' (first run of a new replica)")
	cmd.Flags().StringVar(&keyFile, "storage-key-file", "", "with --join: write the new replica's storage key to `PATH` (outside DIR) instead of DIR/storage.key")
	cmd.Flags().StringVar(&agency, "agency", "XX", "agency code for a default directory created on first run")
	cmd.Flags().StringVar(&name, "name", "xborder node", "agency name for a default directory created on first run")
	cmd.Flags().DurationVar(&syncInterval, "sync-interval", 0, "how often the audit leader polls partners' sets, at least 1s (default: sync_interval of config.yaml, else 1m)")
	return cmd
}

// initFromBundle makes dir from a join bundle, unless dir already holds
// the replica (a restart with the same flags).
func initFromBundle(e *env, dir, path, keyFile string, listen node.ListenConfig) error {
	if _, err := os.Stat(filepath.Join(dir, node.ConfigFile)); err == nil {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return exitError(exitInvalid, fmt.Errorf("node run --join: %w", err), "give the bundle 'xborder replica add --out' wrote")
	}
	b, err := node.ParseBundle(data)
	if err != nil {
		return exitError(exitInvalid, err, "ask the agency's admin for a new bundle")
	}
	res, err := node.InitReplica(dir, b, node.ReplicaInit{Listen: listen, StorageKeyFile: keyFile})
	if err != nil {
		return exitError(exitInvalid, err, "")
	}
	fmt.Fprintf(e.stdout, "replica %s of %s initialised in %s; joining through %s\n", b.Replica, b.Agency, res.Dir, strings.Join(b.Cluster, ", "))
	if keyFile != "" {
		fmt.Fprintf(e.stdout, "storage key: %s (keep it secret, and a backup apart from the data)\n", res.StorageKeyFile)
	}
	fmt.Fprintf(e.stdout, "the bundle holds the agency key: delete %s once the replica runs\n", path)
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func newNodeStatusCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status [--dir DIR] [--wait DURATION]",
		Short: "Print the status of a running replica as JSON; exit 4 when it is not ready",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			deadline := time.Now().Add(wait)
			for {
				cl, err := apiClient(cf, dir)
				if err == nil {
					err = cl.Ready(c.Context())
				}
				if err == nil || time.Now().After(deadline) {
					break
				}
				select {
				case <-c.Context().Done():
					return exitError(exitUnavailable, c.Context().Err(), "")
				case <-time.After(100 * time.Millisecond):
				}
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			for {
				s, err := cl.Status(c.Context())
				if err != nil {
					return apiError(err)
				}
				// A new leader is ready a moment before it has applied its
				// first entry of the term: within --wait, look again.
				rerr := cl.Ready(c.Context())
				if rerr != nil && time.Now().Before(deadline) && c.Context().Err() == nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				b, _ := json.MarshalIndent(s, "", "  ")
				fmt.Fprintf(e.stdout, "%s\n", b)
				if rerr != nil {
					return apiError(rerr)
				}
				return nil
			}
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to `DURATION` for the node to be ready (e.g. 30s)")
	return cmd
}

// apiClient builds the client of a verb that talks to a node: --api and
// --token-file win; otherwise DIR (or the default data directory, when it
// holds a node) gives DIR/api.url and DIR/admin.token.
func apiClient(cf *clientFlags, dir string) (*httpapi.Client, error) {
	url, tokFile := cf.api, cf.tokenFile
	if dir == "" && (url == "" || tokFile == "") {
		if d, err := defaultDataDir(); err == nil {
			if _, err := os.Stat(filepath.Join(d, node.ConfigFile)); err == nil {
				dir = d
			}
		}
	}
	if dir != "" {
		if url == "" {
			b, err := os.ReadFile(filepath.Join(dir, node.APIURLFile))
			if err != nil {
				fc, cerr := node.LoadConfig(dir)
				if cerr != nil || strings.HasSuffix(fc.Listen.API, ":0") { // port 0: only api.url knows
					return nil, exitError(exitUnavailable, fmt.Errorf("find the node's API: %w", err), "is the node running? start it with 'xborder node run --dir "+dir+"'")
				}
				b = []byte(fc.APIURL())
			}
			url = strings.TrimSpace(string(b))
		}
		if tokFile == "" {
			tokFile = filepath.Join(dir, node.AdminTokenFile)
		}
	}
	if url == "" || tokFile == "" {
		return nil, usageError("give --api URL and --token-file FILE, or --dir DIR of the local node", "no node to talk to")
	}
	tok, err := node.ReadToken(tokFile)
	if errors.Is(err, node.ErrSecretMode) {
		return nil, exitError(exitUsage, err, "run `chmod 600 "+tokFile+"`; if someone else may have read it, have an admin replace the token ('xborder user remove NAME', then 'user add NAME')")
	}
	if err != nil {
		return nil, exitError(exitInvalid, err, "give the file 'xborder user add --out FILE' wrote, or DIR/admin.token")
	}
	cl := &httpapi.Client{BaseURL: url, Token: tok}
	if strings.HasPrefix(url, "https://") {
		// A node API off loopback speaks TLS with the replica's certificate:
		// trust the agency CA of DIR, or the file XBORDER_CA_FILE names.
		caFile := os.Getenv("XBORDER_CA_FILE")
		if caFile == "" && dir != "" {
			caFile = filepath.Join(dir, node.CACertFile)
		}
		if caFile != "" {
			ca, err := os.ReadFile(caFile)
			if err == nil {
				cl.HTTP, err = httpapi.AgencyHTTPClient(ca)
			}
			if err != nil {
				return nil, exitError(exitInvalid, fmt.Errorf("agency CA: %w", err), "set XBORDER_CA_FILE to the agency's ca.crt")
			}
		}
	}
	return cl, nil
}

// apiError maps an API error to the CLI's exit codes.
func apiError(err error) error {
	switch {
	case errors.Is(err, httpapi.ErrUnauthorized):
		return exitError(exitDenied, err, "check --token-file: the token belongs to no user")
	case errors.Is(err, httpapi.ErrForbidden), errors.Is(err, httpapi.ErrTooMany):
		return exitError(exitDenied, err, "")
	case errors.Is(err, httpapi.ErrUnavailable):
		return exitError(exitUnavailable, err, "is the node running and ready? try 'xborder node status'")
	}
	return exitError(exitInvalid, err, "")
}

const replicaLong = `Replica adds, lists and removes the replicas of the agency's node. An agency
runs 1, 3 or 5 replicas; both Raft groups (audit and data) span all of them.

'replica add ID --out BUNDLE' asks the node (the replica made by init, which
holds the agency CA key) for a join bundle: a certificate for the new replica,
the agency key, epoch seed and admin token, and the members' transport
addresses. It is written with mode 0600: carry it to the new machine, run
'xborder node run --join BUNDLE --dir DIR' there, and delete the bundle. The
new replica asks a member over the mutual-TLS replica transport to add it to
both groups. 'replica remove ID' takes a replica out of both groups; its
certificate may not join again.`

func newReplicaCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "replica",
		Short: "Add, list and remove the replicas of the agency's node",
		Long:  replicaLong,
		Example: `  xborder replica add r2 --host 10.0.0.2 --out r2.bundle --dir /var/lib/xborder
  xborder node run --join r2.bundle --dir /var/lib/xborder-r2 --listen-raft 10.0.0.2:7000
  xborder replica list --dir /var/lib/xborder
  xborder replica remove r2 --dir /var/lib/xborder`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError("run 'xborder replica --help' for usage", "replica: give a subcommand: add, list or remove")
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	var out string
	var hosts []string
	add := &cobra.Command{
		Use:   "add ID --out BUNDLE [--host H]...",
		Short: "Write the join bundle of a new replica (mode 0600)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return usageError("give --out BUNDLE, the file to write", "replica add: no --out given")
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			data, err := cl.AddReplica(c.Context(), args[0], hosts)
			if err != nil {
				return apiError(err)
			}
			b, err := node.ParseBundle(data)
			if err != nil {
				return exitError(exitInvalid, err, "")
			}
			if err := node.WriteBundle(out, b); err != nil {
				return exitError(exitInvalid, err, "choose a file that does not exist yet")
			}
			fmt.Fprintf(e.stdout, "join bundle of replica %s written to %s (secret: mode 0600)\n", b.Replica, out)
			fmt.Fprintf(e.stdout, "next, on the new machine: xborder node run --join %s --dir DIR\n", out)
			return nil
		},
	}
	add.Flags().StringVar(&out, "out", "", "write the bundle to `FILE` (must not exist)")
	add.Flags().StringArrayVar(&hosts, "host", nil, "name or address of the new replica, for its certificate (repeatable)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the replicas",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			rs, err := cl.Replicas(c.Context())
			if err != nil {
				return apiError(err)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tLEADER")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\n", r.ID, r.Addr, r.Suffrage, r.Leader)
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a replica from both groups",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			if err := cl.RemoveReplica(c.Context(), args[0]); err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "removed %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

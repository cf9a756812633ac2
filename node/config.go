package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/xborder/xborder/internal/card"
)

// Files of a data directory, relative to it. The secret ones are written
// with mode 0600 and checked at start (CheckSecrets).
const (
	ConfigFile      = "config.yaml" // FileConfig, YAML with comments
	P2PKeyFile      = "p2p.key"     // secret: libp2p Ed25519 identity, PEM PKCS #8
	AgencyKeyFile   = "agency.key"  // secret: agency Ed25519 signing key, PEM PKCS #8
	EpochSeedFile   = "epoch.seed"  // secret: the first OPRF epoch seed, 32 bytes in hex
	StorageKeyFile  = "storage.key" // secret: badger at-rest key, 32 bytes in hex
	CACertFile      = "ca.crt"      // the agency CA certificate for replica TLS (public)
	CAKeyFile       = "ca.key"      // secret: the agency CA key
	ReplicaCertFile = "replica.crt" // this replica's TLS certificate (public)
	ReplicaKeyFile  = "replica.key" // secret: this replica's TLS key
	AdminTokenFile  = "admin.token" // secret: the first admin's API token
	AuditDir        = "audit"       // the audit Raft group's ledger directory
	DataDir         = "data"        // the data Raft group's ledger directory
	AgencyPubFile   = "agency.pub"  // the agency public key as a note verifier key (public)
	APIURLFile      = "api.url"     // the URL the running node serves its API on (public)
	ListenFile      = "listen.json" // the addresses the replica bound at its last start (public; Bound)
	secretFileMode  = 0o600         // mode of every secret file
	publicFileMode  = 0o644         // mode of public files
	dataDirMode     = 0o700         // mode of the data directory
	defaultValidity = 365 * 24 * time.Hour
)

// SecretFiles lists the files of a data directory that must be readable by
// their owner only.
var SecretFiles = []string{P2PKeyFile, AgencyKeyFile, EpochSeedFile, StorageKeyFile, CAKeyFile, ReplicaKeyFile, AdminTokenFile}

// ErrConfig: the data directory's config.yaml is missing, malformed or names
// something impossible. The message names the field; fix the file (every
// field is documented in it) or run `xborder init` for a fresh directory.
var ErrConfig = errors.New("bad node configuration")

// FileConfig is the YAML configuration of one replica, kept in
// DIR/config.yaml. Init writes it with a comment above every field.
type FileConfig struct {
	// Agency is the agency code, ISO 3166 alpha-2 upper case. Required.
	Agency string `yaml:"agency"`
	// Name is the agency's name as its card shows it. Required.
	Name string `yaml:"name"`
	// Replica is this replica's ID in the Raft groups and its TLS
	// certificate. Empty: "r1".
	Replica string `yaml:"replica"`
	// Bootstrap makes this replica start a new single-replica cluster when
	// its ledger directories are empty. A joining replica has false.
	Bootstrap bool `yaml:"bootstrap"`
	// Listen holds the addresses this replica listens on.
	Listen ListenConfig `yaml:"listen"`
	// Join lists replica transport addresses (host:port) of running
	// replicas that a replica made from a join bundle asks to add it.
	// Empty: none (the first replica, or one already joined).
	Join []string `yaml:"join"`
	// CardValidity is how long a card this agency signs stays valid.
	// Empty: 8760h (one year).
	CardValidity string `yaml:"card_validity"`
	// LogLevel is debug, info, warn or error. Empty: info.
	LogLevel string `yaml:"log_level"`
	// SyncInterval is how often the audit leader polls partners' encoded
	// sets, and how old a copy may be before a query syncs it first (Go
	// duration, at least 1s). Empty: DefaultSyncInterval (1m). node run
	// --sync-interval overrides it.
	SyncInterval string `yaml:"sync_interval"`
	// StorageKeyFile is the file of the storage key (the at-rest key of
	// the databases and Raft snapshots), absolute or relative to the data
	// directory, so that it may live apart from the data it protects.
	// Empty: $CREDENTIALS_DIRECTORY/storage.key under systemd when present,
	// else DIR/storage.key (StorageKeyPath).
	StorageKeyFile string `yaml:"storage_key_file"`
}

// Sync returns the sync interval, or 0 for the default.
func (c *FileConfig) Sync() (time.Duration, error) {
	if c.SyncInterval == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.SyncInterval)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("sync_interval %q is not a duration of at least 1s such as 1m: %w", c.SyncInterval, ErrConfig)
	}
	return d, nil
}

// ListenConfig holds a replica's listen addresses. Port 0 means a free port,
// bound at start and recorded in DIR/listen.json (see Bound). The raft and
// p2p ports, which the other replicas and the partners know, are bound
// again at every later start on the same host; the API gets a free port at
// each start (api.url names it). A deployment sets fixed ports (see
// docs/operators.md) so that firewalls and partners' cards stay stable.
type ListenConfig struct {
	Raft string `yaml:"raft"` // host:port of the replica TLS transport (both Raft groups)
	P2P  string `yaml:"p2p"`  // libp2p multiaddr, /ip4/ADDR/tcp/PORT
	API  string `yaml:"api"`  // host:port of the HTTP API
}

// ReplicaID returns the replica ID, or its default.
func (c *FileConfig) ReplicaID() string {
	if c.Replica == "" {
		return "r1"
	}
	return c.Replica
}

// APIURL returns the URL a local client reaches the configured API at:
// http on loopback, https elsewhere (see Node.APIURL for the running node's).
func (c *FileConfig) APIURL() string {
	if ok, err := isLoopback(c.Listen.API); err == nil && ok {
		return "http://" + c.Listen.API
	}
	host, port, err := net.SplitHostPort(c.Listen.API)
	if err != nil {
		return "https://" + c.Listen.API
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// Validity returns the card validity, or its default.
func (c *FileConfig) Validity() (time.Duration, error) {
	if c.CardValidity == "" {
		return defaultValidity, nil
	}
	d, err := time.ParseDuration(c.CardValidity)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("card_validity %q is not a positive duration such as 8760h: %w", c.CardValidity, ErrConfig)
	}
	return d, nil
}

// validate checks every field.
func (c *FileConfig) validate() error {
	if len(c.Agency) != 2 || strings.ToUpper(c.Agency) != c.Agency || !isLetters(c.Agency) {
		return fmt.Errorf("agency %q is not an ISO 3166 alpha-2 code such as GB: %w", c.Agency, ErrConfig)
	}
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > card.MaxNameLen || strings.IndexFunc(c.Name, func(r rune) bool {
		return unicode.In(r, unicode.Cc, unicode.Cf) || r == utf8.RuneError
	}) >= 0 {
		return fmt.Errorf("name %q: give 1 to %d bytes of printable text: %w", c.Name, card.MaxNameLen, ErrConfig)
	}
	if !validReplicaID(c.ReplicaID()) {
		return fmt.Errorf("replica %q: use 1 to 64 letters, digits or '-': %w", c.Replica, ErrConfig)
	}
	for name, a := range map[string]string{"listen.raft": c.Listen.Raft, "listen.api": c.Listen.API} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s %q is not host:port: %w", name, a, ErrConfig)
		}
	}
	for _, a := range c.Join {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("join address %q is not host:port: %w", a, ErrConfig)
		}
	}
	if c.Listen.P2P != "" && !strings.HasPrefix(c.Listen.P2P, "/ip") {
		return fmt.Errorf("listen.p2p %q is not a multiaddr such as /ip4/127.0.0.1/tcp/4001: %w", c.Listen.P2P, ErrConfig)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q is not debug, info, warn or error: %w", c.LogLevel, ErrConfig)
	}
	if _, err := c.Sync(); err != nil {
		return err
	}
	_, err := c.Validity()
	return err
}

func isLetters(s string) bool {
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func validReplicaID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// LoadConfig reads and checks DIR/config.yaml. Unknown fields are errors, so
// that a misspelt field never passes silently as its default.
func LoadConfig(dir string) (*FileConfig, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load config %s: no such file (run `xborder init` first): %w", path, ErrConfig)
		}
		return nil, fmt.Errorf("load config: %w", err)
	}
	return parseConfig(path, b)
}

// parseConfig decodes config bytes; path names them in errors.
func parseConfig(path string, b []byte) (*FileConfig, error) {
	var c FileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("load config %s: %v: %w", path, err, ErrConfig)
	}
	if len(c.Join) == 0 {
		c.Join = nil
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return &c, nil
}

// configTemplate is config.yaml as Init writes it: every field with its
// comment. Values are quoted YAML strings (%q is valid YAML for them).
const configTemplate = `# xborder replica configuration (written by xborder init).
# Paths of keys and certificates are fixed names inside this directory;
# secret files must have mode 0600 or the node refuses to start.

# Agency code, ISO 3166 alpha-2, upper case. It names the ledger origin
# (xborder.ledger/<agency>) and the agency card.
agency: %q

# The agency's name as its card shows it to partners.
name: %q

# This replica's ID in both Raft groups and in its TLS certificate.
replica: %q

# true: start a new single-replica cluster when the ledger directories
# are empty (the first replica of an agency). false: wait to be joined.
bootstrap: %t

# Replica transport addresses of running replicas to ask to add this one
# (set from a join bundle); empty for the first replica.
join: %s

listen:
  # Port 0: a free port, bound at start and recorded in listen.json; the
  # raft and p2p ports of the first start are bound again at every later
  # start, so the other replicas and the partners' cards stay right. For a
  # deployment set fixed ports (docs/operators.md: 7000, 4001, 7070).
  # Replica transport (mutual TLS, both Raft groups), host:port; use a
  # reachable address for replicas on other machines. Overridden by
  # node run --listen-raft.
  raft: %q
  # libp2p TCP multiaddr partners dial. Overridden by --listen-p2p.
  p2p: %q
  # HTTP API, host:port; keep it on 127.0.0.1 (the CLI's --api; a running
  # node writes its URL to api.url). Overridden by --listen-api.
  api: %q

# How long the agency card this node signs stays valid (Go duration).
card_validity: %q

# Log level: debug, info, warn or error.
log_level: %q

# How often the audit leader polls partners' encoded sets (Go duration, at
# least 1s; empty: 1m). Overridden by node run --sync-interval.
sync_interval: %q

# The storage key (at-rest key of the databases and Raft snapshots), a
# secret file of mode 0600: absolute, or relative to this directory. Empty:
# $CREDENTIALS_DIRECTORY/storage.key under systemd (LoadCredential=) when
# present, else storage.key in this directory. Keep it apart from the data.
storage_key_file: %q
`

// render returns the YAML text of c with its comments.
func (c *FileConfig) render() []byte {
	join := make([]string, len(c.Join))
	for i, a := range c.Join {
		join[i] = strconv.Quote(a)
	}
	return fmt.Appendf(nil, configTemplate, c.Agency, c.Name, c.ReplicaID(), c.Bootstrap,
		"["+strings.Join(join, ", ")+"]", c.Listen.Raft, c.Listen.P2P, c.Listen.API, c.CardValidity, c.LogLevel, c.SyncInterval,
		c.StorageKeyFile)
}

package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/tlsnet"
)

// ErrExists: Init was pointed at a directory that already holds a node.
// Use it as it is, or choose another directory.
var ErrExists = errors.New("data directory already initialised")

// InitConfig configures Init. Agency and Name are required.
type InitConfig struct {
	// Dir is the data directory, created with mode 0700 if missing. It
	// must not hold a config.yaml yet.
	Dir string
	// Agency is the agency code (ISO 3166 alpha-2, upper case).
	Agency string
	// Name is the agency's name.
	Name string
	// Replica is the replica ID. Empty: "r1".
	Replica string
	// Listen sets the listen addresses. Empty fields: DefaultListenRaft,
	// DefaultListenP2P, DefaultListenAPI (port 0 on 127.0.0.1: a free port
	// bound at the first start and kept, see ListenConfig).
	Listen ListenConfig
	// StorageKeyFile is where the storage key is written (mode 0600; its
	// directory made with mode 0700 if missing), so that it lives apart
	// from the data; config.yaml names it (storage_key_file). It must not
	// exist yet. Empty: DIR/storage.key.
	StorageKeyFile string
	// Now is the clock for certificates. Nil: time.Now.
	Now func() time.Time
}

// InitResult says what Init made.
type InitResult struct {
	Dir            string // the data directory, absolute
	Fingerprint    string // the agency key's fingerprint, as partners check it
	AdminTokenFile string // path of the first admin's token file
	StorageKeyFile string // path of the storage key
	Config         *FileConfig
}

// Init creates a data directory for the first replica of a new agency:
// the libp2p identity, the agency signing key, the first epoch seed, the
// badger at-rest key, the agency CA and this replica's certificate, a
// documented config.yaml and the first admin's token. Secrets get mode
// 0600. The ledgers are created when the node first starts.
func Init(cfg InitConfig) (*InitResult, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("init node: no directory: %w", ErrConfig)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("init node: %w", err)
	}
	fc := &FileConfig{Agency: cfg.Agency, Name: cfg.Name, Replica: cfg.Replica, Bootstrap: true, Listen: cfg.Listen,
		CardValidity: "8760h", LogLevel: "info"}
	fc.Replica = fc.ReplicaID()
	if err := fc.validate(); err != nil {
		return nil, fmt.Errorf("init node: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return nil, fmt.Errorf("init node %s: %w", dir, ErrExists)
	}
	if cfg.StorageKeyFile != "" {
		if fc.StorageKeyFile, err = filepath.Abs(cfg.StorageKeyFile); err != nil {
			return nil, fmt.Errorf("init node: %w", err)
		}
		if _, err := os.Stat(fc.StorageKeyFile); err == nil {
			return nil, fmt.Errorf("init node: storage key file %s exists; remove it or choose another: %w", fc.StorageKeyFile, ErrExists)
		}
		if err := os.MkdirAll(filepath.Dir(fc.StorageKeyFile), dataDirMode); err != nil {
			return nil, fmt.Errorf("init node: %w", err)
		}
	}
	if err := os.MkdirAll(dir, dataDirMode); err != nil {
		return nil, fmt.Errorf("init node: %w", err)
	}
	if err := pickPorts(&fc.Listen); err != nil {
		return nil, fmt.Errorf("init node: %w", err)
	}
	if err := writeKeys(dir, fc, cfg.Now()); err != nil {
		return nil, fmt.Errorf("init node %s: %w", dir, err)
	}
	// The config goes last: its presence marks a complete directory.
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), fc.render(), publicFileMode); err != nil {
		return nil, fmt.Errorf("init node: %w", err)
	}
	key, err := ledger.LoadKey(filepath.Join(dir, AgencyKeyFile))
	if err != nil {
		return nil, fmt.Errorf("init node: %w", err)
	}
	return &InitResult{
		Dir:            dir,
		Fingerprint:    card.Fingerprint(key.Public().(ed25519.PublicKey)),
		AdminTokenFile: filepath.Join(dir, AdminTokenFile),
		StorageKeyFile: fc.StorageKeyPath(dir, ""),
		Config:         fc,
	}, nil
}

// writeKeys writes every key, seed, certificate and token of a new agency.
func writeKeys(dir string, fc *FileConfig, now time.Time) error {
	for _, name := range []string{P2PKeyFile, AgencyKeyFile} {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		pemBytes, err := ledger.MarshalKey(k)
		if err != nil {
			return err
		}
		if err := writeSecret(filepath.Join(dir, name), pemBytes); err != nil {
			return err
		}
		if name == AgencyKeyFile {
			vk, err := ledger.VerifierKey(ledger.Origin(fc.Agency), k.Public().(ed25519.PublicKey))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, AgencyPubFile), []byte(vk+"\n"), publicFileMode); err != nil {
				return err
			}
		}
	}
	if err := writeHexSecret(filepath.Join(dir, EpochSeedFile), 32); err != nil {
		return err
	}
	if err := writeHexSecret(fc.StorageKeyPath(dir, ""), 32); err != nil {
		return err
	}
	ca, err := tlsnet.NewCA(fc.Agency, now)
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, CACertFile), ca.CertPEM(), publicFileMode); err != nil {
		return err
	}
	if err := writeSecret(filepath.Join(dir, CAKeyFile), caKey); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(fc.Listen.Raft)
	certPEM, keyPEM, err := ca.Issue(fc.ReplicaID(), []string{host}, now)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ReplicaCertFile), certPEM, publicFileMode); err != nil {
		return err
	}
	if err := writeSecret(filepath.Join(dir, ReplicaKeyFile), keyPEM); err != nil {
		return err
	}
	tok, err := NewToken()
	if err != nil {
		return err
	}
	return writeSecret(filepath.Join(dir, AdminTokenFile), []byte(tok+"\n"))
}

// pickPorts fills every empty listen address with its default, port 0 on
// 127.0.0.1: the replica binds a free port at its first start and keeps it
// (ListenConfig). Nothing is bound here, so no port can be lost between
// init and the start.
func pickPorts(l *ListenConfig) error {
	if l.Raft == "" {
		l.Raft = DefaultListenRaft
	}
	if l.P2P == "" {
		l.P2P = DefaultListenP2P
	}
	if l.API == "" {
		l.API = DefaultListenAPI
	}
	return nil
}

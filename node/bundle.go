package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/tlsnet"
)

// BundleVersion is the only join bundle format this package reads and
// writes.
const BundleVersion = 1

// maxBundle bounds the size of a join bundle file.
const maxBundle = 1 << 20

// ErrBundle: a join bundle is malformed, of another version, or its parts
// do not fit together. Ask the agency's admin for a new one.
var ErrBundle = errors.New("bad join bundle")

// Bundle is what a new replica needs to join its agency: the agency's
// signing key and epoch seed (seeds never travel through Raft), the first
// admin's token, the agency CA certificate, a certificate and key for the
// new replica, and the replica transport addresses of the running replicas.
// It holds secrets: it is written with mode 0600 and should be deleted once
// the replica runs. It never holds the CA key.
type Bundle struct {
	Version      int      `json:"version"`
	Agency       string   `json:"agency"`
	Name         string   `json:"name"`
	Replica      string   `json:"replica"`       // the new replica's ID
	CardValidity string   `json:"card_validity"` // as in config.yaml
	AgencyKey    string   `json:"agency_key"`    // PEM PKCS #8
	EpochSeed    string   `json:"epoch_seed"`    // hex
	AdminToken   string   `json:"admin_token"`
	CACert       string   `json:"ca_cert"`      // PEM
	ReplicaCert  string   `json:"replica_cert"` // PEM, issued by the CA for Replica
	ReplicaKey   string   `json:"replica_key"`  // PEM PKCS #8
	Cluster      []string `json:"cluster"`      // host:port of running replicas' transports
}

// makeBundle issues a certificate for replica id (its hosts as SANs, for
// operators' tools) from the CA in dir and packs everything a new replica
// needs. cluster lists the running replicas' transport addresses.
func makeBundle(dir string, fc *FileConfig, id string, hosts, cluster []string, now time.Time) (*Bundle, error) {
	if !validReplicaID(id) {
		return nil, fmt.Errorf("replica %q: use 1 to 64 letters, digits or '-': %w", id, ErrConfig)
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return string(b), err
	}
	caCert, err := read(CACertFile)
	if err != nil {
		return nil, err
	}
	caKey, err := read(CAKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w (only the replica made by init holds the CA key)", err)
	}
	ca, err := tlsnet.ParseCA([]byte(caCert), []byte(caKey))
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue(id, hosts, now)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Version: BundleVersion, Agency: fc.Agency, Name: fc.Name, Replica: id, CardValidity: fc.CardValidity,
		CACert: caCert, ReplicaCert: string(certPEM), ReplicaKey: string(keyPEM), Cluster: cluster}
	for _, f := range []struct {
		name string
		dst  *string
	}{{AgencyKeyFile, &b.AgencyKey}, {EpochSeedFile, &b.EpochSeed}, {AdminTokenFile, &b.AdminToken}} {
		if *f.dst, err = read(f.name); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// ParseBundle decodes and checks a join bundle: its version, fields,
// keys and that the replica certificate was issued by the bundle's CA for
// the bundle's agency and replica.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > maxBundle {
		return nil, fmt.Errorf("parse bundle: over %d bytes: %w", maxBundle, ErrBundle)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("parse bundle: %v: %w", err, ErrBundle)
	}
	if dec.More() {
		return nil, fmt.Errorf("parse bundle: trailing data: %w", ErrBundle)
	}
	if b.Version != BundleVersion {
		return nil, fmt.Errorf("parse bundle: version %d, want %d: %w", b.Version, BundleVersion, ErrBundle)
	}
	fc := FileConfig{Agency: b.Agency, Name: b.Name, Replica: b.Replica, CardValidity: b.CardValidity}
	if err := fc.validate(); err != nil {
		return nil, fmt.Errorf("parse bundle: %v: %w", err, ErrBundle)
	}
	if b.Replica == "" || len(b.Cluster) == 0 {
		return nil, fmt.Errorf("parse bundle: no replica ID or no cluster address: %w", ErrBundle)
	}
	for _, a := range b.Cluster {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("parse bundle: cluster address %q: %w", a, ErrBundle)
		}
	}
	if _, err := ledger.ParseKey([]byte(b.AgencyKey)); err != nil {
		return nil, fmt.Errorf("parse bundle: agency key: %v: %w", err, ErrBundle)
	}
	if b.AdminToken = strings.TrimSpace(b.AdminToken); b.AdminToken == "" {
		return nil, fmt.Errorf("parse bundle: no admin token: %w", ErrBundle)
	}
	if err := checkHex(b.EpochSeed, 32); err != nil {
		return nil, fmt.Errorf("parse bundle: epoch seed: %v: %w", err, ErrBundle)
	}
	if err := checkReplicaCert(&b); err != nil {
		return nil, fmt.Errorf("parse bundle: %v: %w", err, ErrBundle)
	}
	return &b, nil
}

// Marshal returns the bundle's file form.
func (b *Bundle) Marshal() []byte {
	out, _ := json.MarshalIndent(b, "", "  ")
	return append(out, '\n')
}

// WriteBundle writes b to path with mode 0600; it refuses to replace a file.
func WriteBundle(path string, b *Bundle) error {
	if err := writeSecret(path, b.Marshal()); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

// InitFromBundle creates the data directory of a replica joining an
// existing agency from its join bundle: the bundle's keys, seed, token and
// certificates, a fresh libp2p identity and at-rest key, and a config.yaml
// with bootstrap false and the cluster addresses to join through. Empty
// listen fields get free 127.0.0.1 ports.
func InitFromBundle(dir string, b *Bundle, listen ListenConfig) (*InitResult, error) {
	return InitReplica(dir, b, ReplicaInit{Listen: listen})
}

// ReplicaInit configures InitReplica. The zero value is InitFromBundle's.
type ReplicaInit struct {
	// Listen holds the addresses to listen on; empty fields get free
	// 127.0.0.1 ports.
	Listen ListenConfig
	// StorageKeyFile is where the new storage key is written (mode 0600,
	// its directory created 0700), outside the data directory, as
	// `xborder init --storage-key-file` does; config.yaml names it
	// (storage_key_file). It must not exist. Empty: DIR/storage.key.
	StorageKeyFile string
}

// InitReplica is InitFromBundle with the storage key where cfg says.
func InitReplica(dir string, b *Bundle, cfg ReplicaInit) (*InitResult, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	if _, err := os.Stat(filepath.Join(abs, ConfigFile)); err == nil {
		return nil, fmt.Errorf("init replica %s: %w", abs, ErrExists)
	}
	fc := &FileConfig{Agency: b.Agency, Name: b.Name, Replica: b.Replica, Bootstrap: false, Listen: cfg.Listen,
		Join: append([]string(nil), b.Cluster...), CardValidity: b.CardValidity, LogLevel: "info"}
	if err := fc.validate(); err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	if cfg.StorageKeyFile != "" {
		if fc.StorageKeyFile, err = filepath.Abs(cfg.StorageKeyFile); err != nil {
			return nil, fmt.Errorf("init replica: %w", err)
		}
		if _, err := os.Stat(fc.StorageKeyFile); err == nil {
			return nil, fmt.Errorf("init replica: storage key file %s exists; remove it or choose another: %w", fc.StorageKeyFile, ErrExists)
		}
		if err := os.MkdirAll(filepath.Dir(fc.StorageKeyFile), dataDirMode); err != nil {
			return nil, fmt.Errorf("init replica: %w", err)
		}
	}
	if err := os.MkdirAll(abs, dataDirMode); err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	if err := pickPorts(&fc.Listen); err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	_, p2p, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	p2pPEM, err := ledger.MarshalKey(p2p)
	if err != nil {
		return nil, err
	}
	key, err := ledger.ParseKey([]byte(b.AgencyKey))
	if err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	vk, err := ledger.VerifierKey(ledger.Origin(b.Agency), key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	secrets := []struct{ name, body string }{
		{P2PKeyFile, string(p2pPEM)}, {AgencyKeyFile, b.AgencyKey}, {EpochSeedFile, b.EpochSeed},
		{ReplicaKeyFile, b.ReplicaKey}, {AdminTokenFile, b.AdminToken + "\n"},
	}
	for _, s := range secrets {
		if err := writeSecret(filepath.Join(abs, s.name), []byte(s.body)); err != nil {
			return nil, fmt.Errorf("init replica: %w", err)
		}
	}
	if err := writeHexSecret(fc.StorageKeyPath(abs, ""), 32); err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	for name, body := range map[string]string{CACertFile: b.CACert, ReplicaCertFile: b.ReplicaCert, AgencyPubFile: vk + "\n"} {
		if err := os.WriteFile(filepath.Join(abs, name), []byte(body), publicFileMode); err != nil {
			return nil, fmt.Errorf("init replica: %w", err)
		}
	}
	// The CA key is not in a bundle; SecretFiles lists it, so the replica
	// records that it has none with an empty 0600 file.
	if err := writeSecret(filepath.Join(abs, CAKeyFile), nil); err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	if err := os.WriteFile(filepath.Join(abs, ConfigFile), fc.render(), publicFileMode); err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	return &InitResult{Dir: abs, Fingerprint: card.Fingerprint(key.Public().(ed25519.PublicKey)),
		AdminTokenFile: filepath.Join(abs, AdminTokenFile), StorageKeyFile: fc.StorageKeyPath(abs, ""), Config: fc}, nil
}

// clusterAddrs returns the transport addresses of the replicas recorded in
// the audit group, this one first.
func (s *replicaSet) clusterAddrs() []string {
	own := s.cfg.Transport.Addr().String()
	seen := map[string]bool{own: true}
	out := []string{own}
	var others []string
	s.cfg.Audit.Scan(nsReplicas, "", func(_ string, v []byte) error {
		var r replicaRecord
		if json.Unmarshal(v, &r) == nil && r.Raft != "" && !seen[r.Raft] {
			seen[r.Raft] = true
			others = append(others, r.Raft)
		}
		return nil
	})
	sort.Strings(others)
	return append(out, others...)
}

// NewBundle makes the join bundle of a new replica id: a certificate from
// the agency CA (hosts become its SANs) and the transport addresses of the
// replicas recorded in the audit group. Only a replica that holds the CA
// key (the one made by init) can make one.
func (s *replicaSet) NewBundle(id string, hosts []string) (*Bundle, error) {
	b, err := makeBundle(s.cfg.Dir, s.cfg.File, id, hosts, s.clusterAddrs(), s.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("make join bundle: %w", err)
	}
	return b, nil
}

// issueBundle is NewBundle for an admin's request (the API's replica add):
// it refuses, with the API's errors, an ID that is bad, a member's or a
// removed replica's, and a replica that holds no CA key.
func (s *replicaSet) issueBundle(id string, hosts []string, user string) (*Bundle, error) {
	if !validReplicaID(id) {
		return nil, fmt.Errorf("add replica %q: use 1 to 64 letters, digits or '-': %w", id, httpapi.ErrBadRequest)
	}
	if s.isMember(id) {
		return nil, fmt.Errorf("add replica %s: already a member: %w", id, httpapi.ErrConflict)
	}
	if _, err := s.cfg.Audit.Get(nsRemoved, id); err == nil {
		return nil, fmt.Errorf("add replica %s: the ID of a removed replica; choose another: %w", id, httpapi.ErrConflict)
	}
	if fi, err := os.Stat(filepath.Join(s.cfg.Dir, CAKeyFile)); err != nil || fi.Size() == 0 {
		return nil, fmt.Errorf("add replica %s: this replica holds no CA key; ask the replica made by init: %w", id, httpapi.ErrBadRequest)
	}
	b, err := s.NewBundle(id, hosts)
	if err != nil {
		return nil, err
	}
	s.cfg.Log.Info("join bundle issued", "replica", id, "user", user)
	return b, nil
}

func certPool(pemBytes []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("no PEM certificate")
	}
	return p, nil
}

func checkHex(s string, n int) error {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(k) != n {
		return fmt.Errorf("want %d bytes in hex", n)
	}
	return nil
}

// checkReplicaCert checks that the bundle's replica certificate chains to
// its CA, names its agency and replica, and matches its key.
func checkReplicaCert(b *Bundle) error {
	pair, err := tls.X509KeyPair([]byte(b.ReplicaCert), []byte(b.ReplicaKey))
	if err != nil {
		return fmt.Errorf("replica certificate and key: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("replica certificate: %v", err)
	}
	roots, err := certPool([]byte(b.CACert))
	if err != nil {
		return fmt.Errorf("CA certificate: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("replica certificate not issued by the bundle's CA: %v", err)
	}
	agency, id, err := tlsnet.ReplicaName(cert)
	if err != nil || agency != b.Agency || id != b.Replica {
		return fmt.Errorf("replica certificate names %s/%s, bundle %s/%s", agency, id, b.Agency, b.Replica)
	}
	return nil
}

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/tlsnet"
	"github.com/xborder/xborder/node/host"
	"github.com/xborder/xborder/policy"
)

// Raft groups, and the tlsnet channels that carry them.
const (
	GroupAudit = "audit"
	GroupData  = "data"
)

// Record namespaces of the audit group (replicated, not audit entries).
const (
	nsUsers     = "users"    // key: user name; value: userRecord JSON
	nsPins      = "pins"     // key: agency code; value: binary form of the pinned card
	nsPolicy    = "policy"   // key: policy version; value: policyRecord JSON
	nsReplicas  = "replicas" // key: replica ID; value: replicaRecord JSON
	nsNode      = "node"     // keys: adminSeeded
	adminSeeded = "admin_seeded"
	adminName   = "admin"
)

// DefaultWatchInterval is how often a replica looks for changes applied by
// Raft (pins, policy, replicas) and refreshes its metrics.
const DefaultWatchInterval = 200 * time.Millisecond

// Config configures Open. Only Dir is required.
type Config struct {
	// Dir is the data directory made by Init.
	Dir string
	// Listen overrides the addresses of config.yaml. Empty fields: those
	// of the file.
	Listen ListenConfig
	// Logger receives the node's, Raft's and the host's logs. Nil: discard.
	Logger *slog.Logger
	// WatchInterval is how often the node picks up replicated changes.
	// Zero: DefaultWatchInterval.
	WatchInterval time.Duration
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// SyncInterval is how often partners' encoded sets are synced in the
	// background, and how old a copy may be before a query syncs it
	// first. Zero: DefaultSyncInterval.
	SyncInterval time.Duration
}

// Node is one running replica of an agency's node: the libp2p host, the
// audit and data ledgers over one replica TLS transport, the policy in
// force and the HTTP API. Open starts it; its goroutines end when Close
// returns.
type Node struct {
	cfg  Config
	fc   *FileConfig
	log  *slog.Logger
	now  func() time.Time
	key  ed25519.PrivateKey // agency key
	mux  *tlsnet.Mux
	aud  *ledger.Ledger
	data *ledger.Ledger
	host *host.Host
	met  *metrics

	adminHash string // SHA-256 of the init admin's token, seeded into the users once

	apiLn  net.Listener
	apiSrv *http.Server
	apiURL string

	policy atomic.Pointer[policy.Set]

	holdingsNode // holdings, encoded sets, epochs, partners' sets (holdings.go, sync.go)

	xsrv *exchange.Server // the match and sync protocols (exchange.go)
	xcl  *exchange.Client // this node asking partners
	mm   *matchMetrics    // match counters and stage latencies

	mu      sync.Mutex
	pins    map[string]*card.Card // agency code to verified pinned card
	own     *card.Card
	ownKey  string // replica set the own card was made for
	leaders map[string]string

	joinWG sync.WaitGroup // the join server and, on a joining replica, the join loop

	stop chan struct{}
	done chan struct{}
}

// Open starts a replica from its data directory. It refuses to start when
// a secret file is readable by others (ErrSecretMode). The single replica
// of a new agency (bootstrap: true) elects itself leader; Open does not
// wait for that: Ready says when the node can serve.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = DefaultWatchInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fc, err := LoadConfig(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := CheckSecrets(cfg.Dir); err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	if cfg.Listen.Raft != "" {
		fc.Listen.Raft = cfg.Listen.Raft
	}
	if cfg.Listen.P2P != "" {
		fc.Listen.P2P = cfg.Listen.P2P
	}
	if cfg.Listen.API != "" {
		fc.Listen.API = cfg.Listen.API
	}
	fc.Listen = keepPorts(cfg.Dir, fc.Listen)
	n := &Node{cfg: cfg, fc: fc, log: log.With("component", "node", "replica", fc.ReplicaID()), now: cfg.Now,
		pins: map[string]*card.Card{}, leaders: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	defer func() {
		if err != nil {
			n.closeParts()
		}
	}()
	if err := n.start(ctx, log); err != nil {
		return nil, err
	}
	go n.watch()
	if !fc.Bootstrap && len(fc.Join) > 0 {
		n.joinWG.Add(1)
		go n.joinLoop()
	}
	n.log.Info("node started", "api", n.apiURL, "peer", n.host.ID().String(), "raft", n.mux.Addr().String())
	return n, nil
}

func (n *Node) path(name string) string { return filepath.Join(n.cfg.Dir, name) }

// start opens every part in order; closeParts undoes what was done.
func (n *Node) start(ctx context.Context, log *slog.Logger) error {
	key, err := ledger.LoadKey(n.path(AgencyKeyFile))
	if err != nil {
		return fmt.Errorf("open node: agency key: %w", err)
	}
	n.key = key
	p2pKey, err := ledger.LoadKey(n.path(P2PKeyFile))
	if err != nil {
		return fmt.Errorf("open node: libp2p key: %w", err)
	}
	storeKey, err := readHexSecret(n.path(StorageKeyFile), 32)
	if err != nil {
		return fmt.Errorf("open node: storage key: %w", err)
	}
	if _, err := readHexSecret(n.path(EpochSeedFile), 32); err != nil {
		return fmt.Errorf("open node: epoch seed: %w", err)
	}
	tok, err := ReadToken(n.path(AdminTokenFile))
	if err != nil {
		return fmt.Errorf("open node: admin token: %w", err)
	}
	n.adminHash = TokenHash(tok)
	n.policy.Store(policy.Default())

	cert, err := tls.LoadX509KeyPair(n.path(ReplicaCertFile), n.path(ReplicaKeyFile))
	if err != nil {
		return fmt.Errorf("open node: replica certificate: %w", err)
	}
	caPEM, err := os.ReadFile(n.path(CACertFile))
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	roots, err := certPool(caPEM)
	if err != nil {
		return fmt.Errorf("open node: %s: %w", CACertFile, err)
	}
	n.mux, err = tlsnet.Listen(n.fc.Listen.Raft, tlsnet.Config{Certificate: cert, Roots: roots,
		Logger: log})
	if err != nil {
		return fmt.Errorf("open node: listen for replicas on %s: %w", n.fc.Listen.Raft, err)
	}
	if n.mux.ReplicaID() != n.fc.ReplicaID() || n.mux.Agency() != n.fc.Agency {
		return fmt.Errorf("open node: %s names replica %s of %s, config.yaml %s of %s: %w",
			ReplicaCertFile, n.mux.ReplicaID(), n.mux.Agency(), n.fc.ReplicaID(), n.fc.Agency, ErrConfig)
	}
	if err := writeBound(n.cfg.Dir, n.mux, n.host, n.apiLn); err != nil { // before Raft may record the address
		return fmt.Errorf("open node: %w", err)
	}
	for _, g := range []struct {
		name   string
		dst    **ledger.Ledger
		signer ed25519.PrivateKey
	}{{GroupAudit, &n.aud, key}, {GroupData, &n.data, nil}} {
		l, err := ledger.Open(ctx, ledger.Config{
			Dir: n.path(g.name), ReplicaID: n.fc.ReplicaID(), Agency: n.fc.Agency, Signer: g.signer,
			Transport: n.mux.Layer(g.name), Bootstrap: n.fc.Bootstrap, EncryptionKey: storeKey,
			Logger: log.With("group", g.name), Now: n.now,
		})
		if err != nil {
			return fmt.Errorf("open node: %s group: %w", g.name, err)
		}
		*g.dst = l
	}
	n.joinWG.Add(1)
	go n.serveJoin(n.mux.Layer(ChanJoin))
	n.host, err = host.New(ctx, host.Config{Key: p2pKey, Listen: []string{n.fc.Listen.P2P}, Logger: log})
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	n.met = newMetrics(func() float64 { return float64(n.connectedPartners()) }, n.groups)
	n.met.setPolicy(n.Policy().Version())
	n.refresh()
	if err := n.startHoldings(); err != nil {
		return err
	}
	if err := n.startExchange(); err != nil {
		return err
	}

	loopback, err := isLoopback(n.fc.Listen.API)
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	n.apiLn, err = net.Listen("tcp", n.fc.Listen.API)
	if err != nil {
		return fmt.Errorf("open node: listen for the API on %s: %w", n.fc.Listen.API, err)
	}
	n.apiURL = "http://" + n.apiLn.Addr().String()
	if !loopback {
		// Off loopback, bearer tokens need TLS: the replica's own
		// certificate, which clients check against the agency CA.
		n.apiLn = tls.NewListener(n.apiLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		n.apiURL = "https://" + localAddr(n.apiLn.Addr())
	}
	api := httpapi.New(httpapi.Config{Backend: (*backend)(n), Metrics: n.met.handler(),
		Observe: n.met.observeRequest, Logger: log})
	n.apiSrv = &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn)}
	go n.apiSrv.Serve(n.apiLn)
	if err := writeBound(n.cfg.Dir, n.mux, n.host, n.apiLn); err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	if err := os.WriteFile(n.path(APIURLFile), []byte(n.apiURL+"\n"), publicFileMode); err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	return nil
}

// closeParts closes whatever start opened, in reverse order.
func (n *Node) closeParts() error {
	var errs []error
	if n.apiSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.apiSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close api: %w", err))
		}
		cancel()
		os.Remove(n.path(APIURLFile))
	} else if n.apiLn != nil {
		n.apiLn.Close()
	}
	if n.host != nil {
		if err := n.host.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.stopHoldings(); err != nil {
		errs = append(errs, err)
	}
	for _, l := range []*ledger.Ledger{n.data, n.aud} {
		if l != nil {
			if err := l.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if n.mux != nil {
		if err := n.mux.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	n.joinWG.Wait()
	return errors.Join(errs...)
}

// Close stops the API, the host, both ledgers and the transport, and
// returns when their goroutines have ended.
func (n *Node) Close() error {
	close(n.stop)
	<-n.done
	return n.closeParts()
}

// APIURL returns the base URL of the HTTP API.
func (n *Node) APIURL() string { return n.apiURL }

// PeerID returns the replica's libp2p peer ID.
func (n *Node) PeerID() peer.ID { return n.host.ID() }

// Host returns the replica's libp2p host.
func (n *Node) Host() *host.Host { return n.host }

// Audit returns the audit group's ledger.
func (n *Node) Audit() *ledger.Ledger { return n.aud }

// Data returns the data group's ledger.
func (n *Node) Data() *ledger.Ledger { return n.data }

// Policy returns the policy in force on this replica.
func (n *Node) Policy() *policy.Set { return n.policy.Load() }

// Agency returns the agency code.
func (n *Node) Agency() string { return n.fc.Agency }

// Ready returns nil when both groups have a leader, this replica's state
// machines are healthy and have applied everything committed, else an
// error wrapping httpapi.ErrUnavailable that says why.
func (n *Node) Ready() error {
	for _, g := range n.groups() {
		s := g.l.Status()
		switch {
		case !s.Healthy:
			return fmt.Errorf("%s group halted: %v: %w", g.name, s.Err, httpapi.ErrUnavailable)
		case !s.Quorum:
			return fmt.Errorf("%s group has no quorum (no leader known): %w", g.name, httpapi.ErrUnavailable)
		case g.l.RaftApplied() < s.Commit:
			return fmt.Errorf("%s group not caught up (applied %d of %d): %w", g.name, g.l.RaftApplied(), s.Commit, httpapi.ErrUnavailable)
		}
	}
	return nil
}

type group struct {
	name string
	l    *ledger.Ledger
}

func (n *Node) groups() []group { return []group{{GroupAudit, n.aud}, {GroupData, n.data}} }

// watch picks up replicated changes and refreshes metrics until Close.
func (n *Node) watch() {
	defer close(n.done)
	t := time.NewTicker(n.cfg.WatchInterval)
	defer t.Stop()
	var applied uint64
	var refreshed time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		for _, g := range n.groups() {
			s := g.l.Status()
			n.met.raftState.WithLabelValues(g.name).Set(raftStateValue[s.State])
			n.met.applied.WithLabelValues(g.name).Set(float64(s.Applied))
			n.mu.Lock()
			if prev, ok := n.leaders[g.name]; !ok || prev != s.Leader {
				if ok {
					n.met.leaderChanges.WithLabelValues(g.name).Inc()
				}
				n.leaders[g.name] = s.Leader
				n.log.Info("leader", "group", g.name, "leader", s.Leader)
			}
			n.mu.Unlock()
		}
		s := n.aud.Status()
		if s.State == "Leader" {
			n.seedAdminOnce()
		}
		if s.Quorum && n.isMember(n.fc.ReplicaID()) {
			n.recordSelf()
		}
		// Pins and policy change only by commands; cards also expire, so
		// the allow set is rebuilt at least once a minute.
		if s.Applied != applied || time.Since(refreshed) > time.Minute {
			applied, refreshed = s.Applied, time.Now()
			n.refresh()
		}
	}
}

// seedAdminOnce records the first admin once per agency (on the leader).
// Errors are logged and retried next tick.
func (n *Node) seedAdminOnce() {
	if _, err := n.aud.Get(nsNode, adminSeeded); !errors.Is(err, ledger.ErrNotFound) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.seedAdmin(ctx); err != nil {
		n.log.Warn("seed admin user", "err", err)
	}
}

// recordSelf keeps this replica's record (peer ID, addresses, transport
// address) current in the audit group, so that the agency card lists it
// and every replica's gater admits it. Errors are logged and retried.
func (n *Node) recordSelf() {
	rec := n.replicaRecord()
	if old, err := n.aud.Get(nsReplicas, n.fc.ReplicaID()); err == nil && string(old) == string(rec) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) {
		return n.aud.Put(ctx, nsReplicas, n.fc.ReplicaID(), rec)
	}); err != nil {
		n.log.Warn("record replica", "err", err)
	}
}

// refresh reloads the policy in force and the pins from the records.
func (n *Node) refresh() {
	n.refreshPolicy()
	if err := n.refreshPins(); err != nil {
		n.log.Warn("refresh pins", "err", err)
	}
}

// commit runs a ledger write and records its latency.
func (n *Node) commit(group, op string, fn func() (ledger.Receipt, error)) (ledger.Receipt, error) {
	start := time.Now()
	r, err := fn()
	if err == nil {
		n.met.commit.WithLabelValues(group, op).Observe(time.Since(start).Seconds())
	}
	return r, err
}

// connectedPartners counts connected peers of other agencies.
func (n *Node) connectedPartners() int {
	c := 0
	for _, p := range n.host.Connected() {
		if p.Agency != n.fc.Agency {
			c++
		}
	}
	return c
}

// ConnectedPartners returns the agency codes of the partner replicas this
// replica is connected to, one per connected peer, sorted by peer ID.
func (n *Node) ConnectedPartners() []string {
	var out []string
	for _, p := range n.host.Connected() {
		if p.Agency != n.fc.Agency {
			out = append(out, p.Agency)
		}
	}
	return out
}

// isLoopback reports whether the API address is on loopback, where the API
// speaks plain HTTP; anywhere else it speaks TLS.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("api address %q: %v: %w", addr, err, ErrConfig)
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback(), nil
}

// localAddr is the host:port a local client dials to reach a listener: an
// unspecified address (0.0.0.0, ::) is reached on loopback.
func localAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// actorName is how an entry body names a user.
func actorName(u httpapi.User) string { return "user:" + u.Name }

// validName reports whether s is a user name: 1 to 64 of [a-z0-9._-],
// starting with a letter or digit.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || strings.IndexAny(s[:1], "._-") == 0 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

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
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/console"
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
	// SyncInterval is how often the audit leader polls partners' encoded
	// sets, and how old a copy may be before a query syncs it first.
	// Zero: sync_interval of config.yaml, else DefaultSyncInterval.
	SyncInterval time.Duration
	// CredentialsDir is systemd's $CREDENTIALS_DIRECTORY: its storage.key,
	// when present, is the storage key unless config.yaml names one
	// (FileConfig.StorageKeyPath). Empty: none.
	CredentialsDir string
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

	chaos chaosHooks // proxies and clock skew of testnet chaos, chaos build only (chaos_on.go)

	apiLn  net.Listener
	apiSrv *http.Server
	apiURL string
	ui     *console.Console // the web console on the API listener (console.go)

	auditG, dataG *raftGroup // the ledgers as the components write to them

	policy    *policySource // the policy in force (policy.go)
	users     *users        // local users and tokens (users.go)
	replicas  *replicaSet   // replica records, membership, join (join.go, bundle.go)
	cards     *cards        // own card and partners' pins (partners.go)
	admission *admission    // inbound matches (match_in.go)
	querier   *querier      // outbound queries and approvals (query.go, approve.go)
	followOut *followupOut  // follow-ups this agency sends, their polls (followup_out*.go, followup_poll.go)

	// The holdings' components and the local store (SetsDir) they share.
	localDB     *badger.DB
	epochs      *epochs      // epoch seeds, keys, rotation (epochs.go)
	sets        *localSets   // this replica's encoded sets (sets.go, precompute*.go)
	holdings    *holdings    // imports, removals, statistics (holdings.go, imports.go, erase.go, orphans.go)
	syncOwner   *syncOwner   // the owner's side of sync (sync_owner.go)
	cardChecker *cardChecker // partners' re-pins arriving over sync (sync.go)
	partnerSets *partnerSets // copies of partners' encoded sets (sync.go)

	xsrv *exchange.Server // the match and sync protocols
	xcl  *exchange.Client // this node asking partners
	wit  *witnessing      // the witness of partners' ledgers, the collector of cosignatures (witness.go)
	fin  *followupsIn     // partners' follow-ups of hits, the liaison's inbox (followup_in.go, followup_inbox*.go)
	mm   *matchMetrics    // match counters and stage latencies

	mu      sync.Mutex
	leaders map[string]string

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
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval, _ = fc.Sync() // checked by LoadConfig
	}
	chaos, err := loadChaos(cfg.Dir, log)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, fc: fc, log: log.With("component", "node", "replica", fc.ReplicaID()), now: chaos.clock(cfg.Now), chaos: chaos,
		leaders: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
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
		n.replicas.join(fc.Join, n.stop)
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
	keyFile := n.fc.StorageKeyPath(n.cfg.Dir, n.cfg.CredentialsDir)
	storeKey, err := readStorageKey(keyFile, n.cfg.CredentialsDir)
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	if _, err := readHexSecret(n.path(EpochSeedFile), 32); err != nil {
		return fmt.Errorf("open node: epoch seed: %w", err)
	}
	tok, err := ReadToken(n.path(AdminTokenFile))
	if err != nil {
		return fmt.Errorf("open node: admin token: %w", err)
	}

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
			Transport: n.chaos.transport(n.mux.Layer(g.name)), Bootstrap: n.fc.Bootstrap, EncryptionKey: storeKey,
			Logger: log.With("group", g.name), Now: n.now, Erasable: g.name == GroupData,
		})
		if err != nil {
			return fmt.Errorf("open node: %s group: %w", g.name, storageKeyErr(err, keyFile))
		}
		*g.dst = l
	}
	joinLn := n.mux.Layer(ChanJoin) // served once the replicas are built
	n.host, err = host.New(ctx, host.Config{Key: p2pKey, Listen: []string{n.fc.Listen.P2P}, Logger: log})
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	n.met = newMetrics(func() float64 { return float64(n.connectedPartners()) }, n.groups)
	n.auditG, n.dataG = newRaftGroup(GroupAudit, n.aud, n.met), newRaftGroup(GroupData, n.data, n.met)
	clog := func(c string) *slog.Logger { return log.With("component", c, "replica", n.fc.ReplicaID()) }
	n.policy = newPolicySource(n.auditG, n.met, clog("policy"))
	n.users = newUsers(n.auditG, n.policy, TokenHash(tok), n.now, clog("users"))
	n.replicas = newReplicaSet(replicaSetConfig{ID: n.fc.ReplicaID(), Dir: n.cfg.Dir, File: n.fc, Audit: n.auditG,
		Data: n.dataG, Host: n.host, Transport: n.mux, Now: n.now, Log: clog("replicas")})
	n.replicas.serve(joinLn)
	if n.localDB, err = openLocal(n.path(SetsDir), storeKey); err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	hlog, every := log.With("replica", n.fc.ReplicaID()), max(n.cfg.WatchInterval, 100*time.Millisecond)
	n.epochs = newEpochs(epochsConfig{Audit: n.auditG, Local: n.localDB, SeedFile: n.path(EpochSeedFile),
		Agency: n.fc.Agency, Replica: n.fc.ReplicaID(), Key: key, Logger: hlog})
	n.cards = newCards(cardsConfig{Agency: n.fc.Agency, Name: n.fc.Name, Validity: n.fc.Validity, Key: key,
		Audit: n.auditG, Replicas: n.replicas, Epochs: n.epochs, Allow: n.host, Now: n.now, Log: clog("partners")})
	n.sets = newLocalSets(setsConfig{DB: n.localDB, Data: n.dataG, Audit: n.auditG, Epochs: n.epochs,
		Agency: n.fc.Agency, Replica: n.fc.ReplicaID(), Interval: every, Logger: hlog, Registry: n.met.reg})
	n.holdings = newHoldings(holdingsConfig{Data: n.dataG, Audit: n.auditG, Local: n.localDB, Epochs: n.epochs,
		Sets: n.sets, Policy: n.policy, Now: n.now, Replica: n.fc.ReplicaID(), Interval: every, Logger: hlog, Registry: n.met.reg})
	smet := newSyncMetrics(n.met.reg)
	n.syncOwner = newSyncOwner(syncOwnerConfig{Sets: n.sets, Card: n.cards, Policy: n.policy, Now: n.now, Audit: n.auditG,
		Replica: n.fc.ReplicaID(), Metrics: smet, Logger: hlog})
	n.cardChecker = newCardChecker(n.cards, n.now)
	n.met.setPolicy(n.Policy().Version())
	n.refresh()
	n.mm = newMatchMetrics(n.met.reg)
	n.admission = newAdmission(n.auditG, n.policy, n.sets, n.mm, n.now, clog("match"))
	n.xsrv, n.xcl, err = newExchange(n.host,
		exchange.ServerConfig{Agency: n.fc.Agency, Signer: key, Keys: n.cards, Admitter: n.admission,
			Responders: n.admission, Sets: n.syncOwner, SyncAuthorizer: n.syncOwner,
			SyncAuditor: n.syncOwner, Clock: n.now, Throttled: n.mm.throttle, Logger: clog("exchange")},
		exchange.ClientConfig{Agency: n.fc.Agency, Signer: key, Keys: n.cards, Cards: n.cardChecker, Clock: n.now})
	if err != nil {
		return err
	}
	order := newReplicaOrder(nil) // shared: a replica that fails a sync is asked last for a match too
	if n.partnerSets, err = openPartnerSets(partnerSetsConfig{Dir: n.path(PartnersDir), Key: storeKey, Client: n.xcl,
		Opener: n.host, Order: order, Pins: n.cards, Policy: n.policy, Leader: func() bool { return n.auditG.Status().State == "Leader" },
		Interval: n.cfg.SyncInterval, Logger: hlog, Metrics: smet}); err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	hits := &hitStore{data: n.dataG, policy: n.policy, now: n.now, erase: n.holdings.requestErase}
	n.querier = newQuerier(querierConfig{Audit: n.auditG, Policy: n.policy, Pins: n.cards, Sets: n.partnerSets, Client: n.xcl,
		Opener: n.host, Order: order, Hits: hits, Metrics: n.mm, Now: n.now, Log: clog("query")})
	n.followOut = newFollowupOut(followupOutConfig{Audit: n.auditG, Hits: hits, Policy: n.policy, Pins: n.cards, Keys: n.cards,
		Client: n.xcl, Opener: n.host, Order: order, Leader: func() bool { return n.auditG.Status().State == "Leader" },
		Interval: min(n.cfg.SyncInterval, DefaultFollowupPoll), Now: n.now, Log: clog("followup")})
	if n.wit, err = newWitnessing(witnessingConfig{Agency: n.fc.Agency, Key: key, Audit: n.auditG, Pins: n.cards, Client: n.xcl,
		Opener: n.host, Host: n.host, Registry: n.met.reg, Interval: n.cfg.SyncInterval, Throttled: n.mm.throttle, Log: clog("witness")}); err != nil {
		return err
	}
	if n.fin, err = newFollowupsIn(followupsInConfig{Agency: n.fc.Agency, Signer: key, Keys: n.cards, Audit: n.auditG, Data: n.dataG,
		Sets: n.sets, Policy: n.policy, Host: n.host, Registry: n.met.reg, Now: n.now, Logger: clog("followup")}); err != nil {
		return err
	}
	n.sets.Start()
	n.holdings.Start()
	n.partnerSets.Start()
	n.followOut.Start()

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
	b := &backend{agency: n.fc.Agency, replica: n.fc.ReplicaID(), peer: n.host.ID().String(), node: n,
		audit: n.auditG, data: n.dataG, users: n.users, cards: n.cards, policy: n.policy, replicas: n.replicas,
		querier: n.querier, holdings: n.holdings, witness: n.wit, followups: n.fin, followOut: n.followOut, partners: n.partnerSets}
	api, ui, err := apiHandler(b, httpapi.Config{Metrics: n.met.handler(), Observe: n.met.observeRequest, Logger: log},
		n.auditG.VerifierKey(), n.now, log) // the API, and the console under /ui/ (console.go)
	if err != nil {
		return err
	}
	n.ui = ui
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
	if n.ui != nil {
		errs = append(errs, n.ui.Close()) // the console's background queries end while the host and ledgers are open
	}
	if n.host != nil {
		if err := n.host.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.followOut != nil {
		errs = append(errs, n.followOut.Close())
	}
	errs = append(errs, n.wit.Close(), n.partnerSets.Close(), n.holdings.Close(), n.sets.Close())
	if n.localDB != nil {
		if err := n.localDB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close local store: %w", err))
		}
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
	if n.replicas != nil {
		n.replicas.wait()
	}
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
func (n *Node) Policy() *policy.Set { return n.policy.Policy() }

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
			n.users.seedAdminOnce()
		}
		if s.Quorum && n.replicas.isMember(n.fc.ReplicaID()) {
			n.replicas.recordSelf()
		}
		// Pins and policy change only by commands; cards also expire, so
		// the allow set is rebuilt at least once a minute.
		if s.Applied != applied || time.Since(refreshed) > time.Minute {
			applied, refreshed = s.Applied, time.Now()
			n.refresh()
		}
	}
}

// refresh reloads the policy in force and the pins from the records.
func (n *Node) refresh() {
	n.policy.refreshPolicy()
	if err := n.cards.refreshPins(); err != nil {
		n.log.Warn("refresh pins", "err", err)
	}
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

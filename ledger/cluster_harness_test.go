package ledger

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/ledger/tlsnet"
)

// A small in-process cluster harness: replicas on real badger directories
// under t.TempDir(), talking over tlsnet on 127.0.0.1 with a test CA.

// replica is one member of a test cluster.
type replica struct {
	id   string
	dir  string
	addr string
	tls  tlsnet.Config
	mux  *tlsnet.Mux
	l    *Ledger // nil while stopped
}

type cluster struct {
	t    testing.TB
	ca   *tlsnet.CA
	reps []*replica
	tune func(*raft.Config)
	base string
	// checkpoint is the replicas' CheckpointInterval (zero: the default).
	checkpoint time.Duration
	// now gives a replica its clock (nil, or nil for that replica: time.Now).
	now func(id string) func() time.Time
	// logger, when set, receives every replica's log instead of testLogger.
	logger *slog.Logger
	// key is the replicas' EncryptionKey (nil: none).
	key []byte
}

// fastRaft shortens Raft's timeouts for loopback tests.
func fastRaft(rc *raft.Config) {
	rc.HeartbeatTimeout = 500 * time.Millisecond
	rc.ElectionTimeout = 500 * time.Millisecond
	rc.LeaderLeaseTimeout = 100 * time.Millisecond
	rc.CommitTimeout = 20 * time.Millisecond
}

// testWriteTimeout is the bounded wait for a leader in cluster tests.
const testWriteTimeout = 4 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("LEDGER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

// newCluster makes a CA and no replicas yet.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	ca, err := tlsnet.NewCA("GB", time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// The base directory's removal is registered first, so it runs after
	// closeAll (cleanups run last in, first out).
	c := &cluster{t: t, ca: ca, tune: fastRaft, base: t.TempDir()}
	t.Cleanup(c.closeAll)
	return c
}

// MakeCluster starts n replicas: the first bootstraps, the others are added
// through it. It returns once all have applied the configuration.
func MakeCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := newCluster(t)
	c.grow(n)
	return c
}

// grow starts n replicas: the first bootstraps, the others are added.
func (c *cluster) grow(n int) {
	c.t.Helper()
	for i := range n {
		r := c.newReplica(fmt.Sprintf("r%d", i+1), c.ca)
		c.start(r, i == 0)
		if i > 0 {
			c.add(r)
		}
	}
	c.converge()
}

// tlsConfig issues a certificate for id from issuer; roots is always the
// cluster's CA.
func (c *cluster) tlsConfig(id string, issuer *tlsnet.CA) tlsnet.Config {
	certPEM, keyPEM, err := issuer.Issue(id, []string{"127.0.0.1"}, time.Now().Add(-time.Minute))
	if err != nil {
		c.t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		c.t.Fatal(err)
	}
	return tlsnet.Config{Certificate: cert, Roots: c.ca.Pool(), HandshakeTimeout: 5 * time.Second,
		DialTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)}
}

// newReplica prepares a replica (directory, certificate, address) without
// starting it.
func (c *cluster) newReplica(id string, issuer *tlsnet.CA) *replica {
	dir, err := os.MkdirTemp(c.base, id)
	if err != nil {
		c.t.Fatal(err)
	}
	r := &replica{id: id, dir: dir, addr: "127.0.0.1:0", tls: c.tlsConfig(id, issuer)}
	c.reps = append(c.reps, r)
	return r
}

// start listens on the replica's address (the same one again after a stop)
// and opens its ledger.
func (c *cluster) start(r *replica, bootstrap bool) {
	c.t.Helper()
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r.mux, err = tlsnet.Listen(r.addr, r.tls); err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("listen %s: %v", r.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.addr = r.mux.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var now func() time.Time
	if c.now != nil {
		now = c.now(r.id)
	}
	log := c.logger
	if log == nil {
		log = testLogger(c.t)
	}
	r.l, err = Open(ctx, Config{Dir: r.dir, ReplicaID: r.id, Agency: "GB", Signer: testKey,
		Transport: r.mux.Layer("audit"), Bootstrap: bootstrap, Logger: log,
		WriteTimeout: testWriteTimeout, tune: c.tune, CheckpointInterval: c.checkpoint, Now: now, EncryptionKey: c.key})
	if err != nil {
		r.mux.Close()
		c.t.Fatalf("open replica %s: %v", r.id, err)
	}
}

// add adds r as a voter through whichever member answers.
func (c *cluster) add(r *replica) {
	c.t.Helper()
	c.poll(10*time.Second, "add "+r.id, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return c.Leader().l.AddVoter(ctx, r.id, r.addr)
	})
}

// stop closes a replica's transport without warning, then its ledger.
func (c *cluster) stop(r *replica) {
	c.t.Helper()
	if r.mux != nil {
		r.mux.Close()
		r.mux = nil
	}
	if r.l != nil {
		if err := r.l.Close(); err != nil {
			c.t.Logf("close %s: %v", r.id, err)
		}
		r.l = nil
	}
}

// Cut closes a replica's transport: it keeps running, cut off.
func (c *cluster) Cut(r *replica) {
	r.mux.Close()
	r.mux = nil
}

// Restore brings a cut or stopped replica back on its address: a new
// transport and a new Raft on its directory.
func (c *cluster) Restore(r *replica) {
	c.t.Helper()
	c.stop(r)
	c.start(r, false)
}

func (c *cluster) closeAll() {
	for _, r := range c.reps {
		c.stop(r)
	}
}

func (c *cluster) running() []*replica {
	var rs []*replica
	for _, r := range c.reps {
		if r.l != nil && r.mux != nil {
			rs = append(rs, r)
		}
	}
	return rs
}

// Leader polls (5 s) for the running replica that leads.
func (c *cluster) Leader() *replica {
	c.t.Helper()
	var lead *replica
	c.poll(5*time.Second, "find a leader", func() error {
		for _, r := range c.running() {
			if r.l.isLeader() {
				lead = r
				return nil
			}
		}
		return errors.New("no leader")
	})
	return lead
}

func (c *cluster) followers() []*replica {
	var fs []*replica
	for _, r := range c.running() {
		if !r.l.isLeader() {
			fs = append(fs, r)
		}
	}
	return fs
}

// poll calls fn until it returns nil, or fails the test after d.
func (c *cluster) poll(d time.Duration, what string, fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converge waits (20 s) until every running replica has applied the same
// Raft index and holds the same tree.
func (c *cluster) converge() {
	c.t.Helper()
	c.poll(20*time.Second, "converge", func() error {
		rs := c.running()
		var want uint64
		var root tlog.Hash
		for i, r := range rs {
			st := r.l.Status()
			n, h, err := r.l.TreeHead()
			if err != nil {
				return err
			}
			// Raft's applied index counts the entries the state machine
			// never sees (no-ops, barriers).
			if applied := r.l.RaftApplied(); applied < st.Commit {
				return fmt.Errorf("%s applied %d of %d", r.id, applied, st.Commit)
			}
			if i == 0 {
				want, root = n, h
				continue
			}
			if n != want || h != root {
				return fmt.Errorf("%s has %d entries (root %x), %s %d (root %x)", r.id, n, h[:4], rs[0].id, want, root[:4])
			}
		}
		lead := c.Leader()
		for _, r := range rs {
			if r.l.fsm.meta().applied != lead.l.fsm.meta().applied {
				return fmt.Errorf("%s applied %d, leader %d", r.id, r.l.fsm.meta().applied, lead.l.fsm.meta().applied)
			}
		}
		return nil
	})
}

// checkExactlyOnce checks that every replica holds every request ID in
// acked exactly once, and no entry twice.
func (c *cluster) checkExactlyOnce(acked map[string]bool) {
	c.t.Helper()
	for _, r := range c.running() {
		es, err := r.l.Entries(context.Background(), Filter{})
		if err != nil {
			c.t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range es {
			if e.RequestID != "" {
				seen[e.RequestID]++
			}
		}
		for id := range acked {
			if seen[id] != 1 {
				c.t.Errorf("replica %s holds acknowledged %s %d times; want 1", r.id, id, seen[id])
			}
		}
		for id, n := range seen {
			if n != 1 {
				c.t.Errorf("replica %s holds %s %d times", r.id, id, n)
			}
		}
	}
}

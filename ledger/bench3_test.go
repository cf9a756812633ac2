package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/internal/slogadapter"
	"github.com/xborder/xborder/ledger/raftbadger"
	"github.com/xborder/xborder/ledger/tlsnet"
)

// BenchmarkAppendReplicas compares durable ledger appends on three
// replicas (tlsnet on loopback, badger with synced log writes, 1 KiB
// entries, 64 writers on the leader) with raw Raft on the same stores and
// transport and a state machine that only counts, and with in-memory Raft
// (raft.NewInmemStore and raft.NewInmemTransport). It is a sub-benchmark
// of BenchmarkAppend: BenchmarkAppend/replicas=3/writers=64/….
func benchmarkAppendReplicas(b *testing.B) {
	const writers = 64
	b.Run(fmt.Sprintf("replicas=3/writers=%d/ledger", writers), func(b *testing.B) {
		c := MakeCluster(b, 3)
		l := c.Leader().l
		e := kib(0)
		parallel(b, writers, func(i int) error {
			_, err := l.Append(context.Background(), e)
			return err
		})
		// A leader change under the load (the cluster's Raft lease is
		// 100 ms) leaves the writers on a follower, forwarding: say so,
		// since the figures then measure that too.
		if st := l.Status(); st.State != raft.Leader.String() {
			b.Logf("the leader changed during the run (replica %s is now %s): the later appends were forwarded", st.ReplicaID, st.State)
		}
	})
	b.Run(fmt.Sprintf("replicas=3/writers=%d/raw-raft", writers), func(b *testing.B) {
		r := rawCluster(b, false)
		data := must(encodeCommand(&command{Op: opAppend, ID: NewCommandID(), Entry: ptr(kib(0))}))
		parallel(b, writers, func(i int) error { return r.Apply(data, 10*time.Second).Error() })
	})
	b.Run(fmt.Sprintf("replicas=3/writers=%d/inmem-raft", writers), func(b *testing.B) {
		r := rawCluster(b, true)
		data := must(encodeCommand(&command{Op: opAppend, ID: NewCommandID(), Entry: ptr(kib(0))}))
		parallel(b, writers, func(i int) error { return r.Apply(data, 10*time.Second).Error() })
	})
}

// rawCluster starts three bootstrapped Raft replicas with a counting state
// machine: on the ledger's badger stores and tlsnet, or in memory. It
// returns the leader; the replicas stop when the benchmark ends.
func rawCluster(b *testing.B, inmem bool) *raft.Raft {
	c := newCluster(b)
	type node struct {
		id    raft.ServerID
		logs  raft.LogStore
		store raft.StableStore
		snaps raft.SnapshotStore
		trans raft.Transport
	}
	var nodes []node
	var inmems []*raft.InmemTransport
	for i := range 3 {
		id := raft.ServerID(fmt.Sprintf("r%d", i+1))
		n := node{id: id}
		if inmem {
			s := raft.NewInmemStore()
			n.logs, n.store, n.snaps = s, s, raft.NewInmemSnapshotStore()
			_, t := raft.NewInmemTransport("")
			n.trans = t
			inmems = append(inmems, t)
		} else {
			r := c.newReplica(string(id), c.ca)
			mux, err := tlsnet.Listen(r.addr, r.tls)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { mux.Close() })
			db, err := badger.Open(badger.DefaultOptions(filepath.Join(r.dir, "raft")).WithSyncWrites(true).WithLogger(nil).
				WithNumVersionsToKeep(1).WithMemTableSize(16 << 20).WithValueThreshold(64 << 10).
				WithValueLogFileSize(128 << 20).WithBlockCacheSize(16 << 20).WithNumCompactors(2))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			st := raftbadger.New(db, prefixRaft)
			n.logs, _ = raft.NewLogCache(1024, st)
			n.store = st
			if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(r.dir, "snapshots"), 2, slogadapter.New(nil)); err != nil {
				b.Fatal(err)
			}
			n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: mux.Layer("audit"), MaxPool: 3, Timeout: 10 * time.Second, Logger: slogadapter.New(nil)})
		}
		nodes = append(nodes, n)
	}
	for _, a := range inmems {
		for _, o := range inmems {
			if a != o {
				a.Connect(o.LocalAddr(), o)
			}
		}
	}
	var cfg raft.Configuration
	for _, n := range nodes {
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: n.id, Address: n.trans.LocalAddr()})
	}
	var rs []*raft.Raft
	for _, n := range nodes {
		rc := raft.DefaultConfig()
		rc.LocalID = n.id
		rc.Logger = slogadapter.New(nil)
		rc.BatchApplyCh = true
		fastRaft(rc)
		if err := raft.BootstrapCluster(rc, n.logs, n.store, n.snaps, n.trans, cfg); err != nil {
			b.Fatal(err)
		}
		r, err := raft.NewRaft(rc, &countFSM{}, n.logs, n.store, n.snaps, n.trans)
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, r)
		tr := n.trans
		b.Cleanup(func() {
			r.Shutdown().Error()
			if c, ok := tr.(raft.WithClose); ok {
				c.Close()
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range rs {
			if r.State() == raft.Leader {
				return r
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("raw raft: no leader within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkForwardedAppend is BenchmarkAppend/replicas=3/writers=64/ledger
// with the writers on a follower: every append is forwarded to the leader
// over the shared transport and answered once committed.
func BenchmarkForwardedAppend(b *testing.B) {
	const writers = 64
	b.Run(fmt.Sprintf("replicas=3/writers=%d", writers), func(b *testing.B) {
		c := MakeCluster(b, 3)
		c.Leader()
		l := c.followers()[0].l
		e := kib(0)
		parallel(b, writers, func(i int) error {
			_, err := l.Append(context.Background(), e)
			return err
		})
	})
}

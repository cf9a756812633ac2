package ledger

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/internal/hclogslog"
	"github.com/xborder/xborder/ledger/raftbadger"
	"github.com/xborder/xborder/ledger/tlsnet"
)

// kib is a 1 KiB entry: the body's purpose carries the bulk.
func kib(i int) Entry {
	e := entry(i)
	e.Body.Purpose = strings.Repeat("p", 1024-len(e.Body.Actor)-len(e.Body.LegalBasis)-len(e.Body.CaseRef))
	return e
}

// warmup is how many calls parallel makes, untimed, before it measures:
// enough for every replica's databases, caches and connections and the
// ledger's batcher to reach their steady state.
const warmup = 1000

// parallel runs op from writers goroutines until b.N calls are done and
// reports appends/s and latency percentiles, after warmup calls that it
// does not measure.
func parallel(b *testing.B, writers int, op func(i int) error) {
	run := func(n int, lat []time.Duration) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					t := time.Now()
					if err := op(i); err != nil {
						b.Error(err)
						return
					}
					if lat != nil {
						lat[i] = time.Since(t)
					}
				}
			}()
		}
		wg.Wait()
	}
	run(warmup, nil)
	lat := make([]time.Duration, b.N)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	run(b.N, lat)
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	// CPU of the whole process (every replica, their databases' background
	// work included) per call: on a machine of few cores, what bounds the
	// rate.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user and system CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppend compares ledger appends on one durable replica with raw
// Raft on the same stores (badger log store behind a log cache, synced
// writes, loopback TCP transport) and a state machine that only counts.
func BenchmarkAppend(b *testing.B) {
	const writers = 64
	b.Run(fmt.Sprintf("ledger/replicas=1/writers=%d", writers), func(b *testing.B) {
		l := open(b, testConfig(b.TempDir()))
		defer l.Close()
		e := kib(0)
		parallel(b, writers, func(i int) error {
			_, err := l.Append(context.Background(), e)
			return err
		})
	})
	b.Run(fmt.Sprintf("raw-raft/replicas=1/writers=%d", writers), func(b *testing.B) {
		r, cleanup := rawRaft(b)
		defer cleanup()
		data := must(encodeCommand(&command{Op: opAppend, ID: NewCommandID(), Entry: ptr(kib(0))}))
		parallel(b, writers, func(i int) error {
			return r.Apply(data, 10*time.Second).Error()
		})
	})
	benchmarkAppendReplicas(b)
}

func ptr[T any](v T) *T { return &v }

type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any                 { f.n.Add(1); return nil }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnap{}, nil }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type countSnap struct{}

func (countSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (countSnap) Release()                          {}

// rawRaft starts a bootstrapped single-replica Raft with the ledger's
// storage and transport settings and a counting state machine.
func rawRaft(b *testing.B) (*raft.Raft, func()) {
	dir := b.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "state")).WithSyncWrites(true).WithLogger(nil).
		WithNumVersionsToKeep(1).WithMemTableSize(16 << 20).WithValueThreshold(64 << 10).
		WithValueLogFileSize(128 << 20).WithBlockCacheSize(16 << 20).WithNumCompactors(2))
	if err != nil {
		b.Fatal(err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = "r1"
	rc.Logger = hclogslog.New(nil)
	rc.BatchApplyCh = true
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	store := raftbadger.New(db, prefixRaft)
	logs, _ := raft.NewLogCache(1024, store)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, rc.Logger)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: &tcpLayer{ln: ln}, MaxPool: 3, Timeout: 10 * time.Second, Logger: rc.Logger})
	cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}}
	if err := raft.BootstrapCluster(rc, logs, store, snaps, trans, cfg); err != nil {
		b.Fatal(err)
	}
	r, err := raft.NewRaft(rc, &countFSM{}, logs, store, snaps, trans)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			b.Fatal("raw raft: no leader within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r, func() {
		r.Shutdown().Error()
		trans.Close()
		db.Close()
	}
}

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
			if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(r.dir, "snapshots"), 2, hclogslog.New(nil)); err != nil {
				b.Fatal(err)
			}
			n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: mux.Layer("audit"), MaxPool: 3, Timeout: 10 * time.Second, Logger: hclogslog.New(nil)})
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
		rc.Logger = hclogslog.New(nil)
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

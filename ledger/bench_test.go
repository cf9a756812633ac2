package ledger

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
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
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/internal/slogadapter"
	"github.com/xborder/xborder/ledger/raftbadger"
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
	rc.Logger = slogadapter.New(nil)
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

const bigTree = 1_000_000

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
)

// buildBigTree writes a 1,000,000-entry tree straight into badger (entry
// records without bodies, and the size; no Raft), once per test binary run.
func buildBigTree() (string, error) {
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "xborder-ledger-bigtree-")
		if bigErr != nil {
			return
		}
		db, err := badger.Open(badger.DefaultOptions(bigDir).WithLogger(nil).WithValueThreshold(64 << 10))
		if err != nil {
			bigErr = err
			return
		}
		defer db.Close()
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		var hs hashStore
		e := entry(0)
		e.Version = EntryVersion
		for i := uint64(0); i < bigTree; i++ {
			e.Index = i
			e.Time = time.Unix(int64(i), 0)
			leaf := EncodeLeaf(&e.Header)
			nh, err := tlog.StoredHashes(int64(i), leaf, hs)
			if err != nil {
				bigErr = err
				return
			}
			hs = append(hs, nh...)
			if err := wb.Set(idxKey(pfxEntry, i), encodeRecord(nh, leaf, nil)); err != nil {
				bigErr = err
				return
			}
		}
		if err := wb.Set([]byte(keySize), u64(bigTree)); err != nil {
			bigErr = err
			return
		}
		bigErr = wb.Flush()
	})
	return bigDir, bigErr
}

// BenchmarkProof measures inclusion and consistency proof generation on a
// 1,000,000-entry tree read from badger, at random indexes and sizes.
func BenchmarkProof(b *testing.B) {
	dir, err := buildBigTree()
	if err != nil {
		b.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithValueThreshold(64 << 10))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	b.Run("inclusion/n=1000000", func(b *testing.B) {
		for b.Loop() {
			i := rng.Uint64N(bigTree)
			err := db.View(func(txn *badger.Txn) error {
				_, err := entryProof(txn, i, 0)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency/n=1000000", func(b *testing.B) {
		for b.Loop() {
			old := 1 + rng.Uint64N(bigTree-1)
			err := db.View(func(txn *badger.Txn) error {
				_, err := consistencyProof(txn, old, bigTree)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

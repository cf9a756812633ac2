package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// TestPrune: bodies older than the date go, the prune is an entry, a date
// inside the retention is refused, and the export still verifies.
func TestPrune(t *testing.T) {
	l, cfg, clk, t0 := openRetained(t)
	defer l.Close()
	appendN(t, l, 0, 6) // 2020-01-01
	clk.Set(t0.AddDate(0, 6, 0))
	appendN(t, l, 6, 4) // 2020-07-01
	clk.Set(t0.AddDate(1, 3, 0))

	if _, _, err := l.Prune(context.Background(), t0.AddDate(0, 6, 0), "dpo"); !errors.Is(err, ErrRetention) {
		t.Errorf("Prune inside the retention = %v; want ErrRetention", err)
	}
	r, n, err := l.Prune(context.Background(), t0.AddDate(0, 1, 0), "dpo")
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		wantPruned := e.Index < 6
		if e.Pruned != wantPruned || (e.Pruned && e.Body != (Body{})) {
			t.Errorf("entry %d pruned = %v, body %+v; want pruned %v", e.Index, e.Pruned, e.Body, wantPruned)
		}
	}
	last := es[len(es)-1]
	if !r.Appended || last.Index != r.Index || last.Type != TypePrune || last.Count != n || n < 6 || last.Body.Actor != "dpo" {
		t.Errorf("prune entry = %+v (receipt %+v, %d pruned); want a prune entry by dpo counting at least 6", last, r, n)
	}
	// Filters on body fields skip pruned entries.
	got, err := l.Entries(context.Background(), Filter{Actor: "officer-7"})
	if err != nil || len(got) != 4 {
		t.Errorf("Entries(actor officer-7) = %d entries, %v; want the 4 unpruned", len(got), err)
	}
	out := exportLedger(t, l)
	rep, err := Verify(out, l.VerifierKey(), nil)
	if err != nil {
		t.Fatalf("Verify after prune: %v", err)
	}
	if rep.Pruned != 6 || rep.Bodies != rep.Size-6 {
		t.Errorf("Verify report = %+v; want 6 pruned", rep)
	}
	// And the start check accepts pruned bodies.
	l.Close()
	l = open(t, cfg)
	if st := l.Status(); st.Size != rep.Size {
		t.Errorf("size after reopen %d; want %d", st.Size, rep.Size)
	}
}

// TestProofsCrossLibrary: proofs from x/mod/sumdb/tlog verify with
// transparency-dev/merkle and the other way round, for every index and
// every pair of sizes of a small tree.
func TestProofsCrossLibrary(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	appendN(t, l, 0, 21)
	h := rfc6962.DefaultHasher
	var leaves [][]byte
	roots := map[uint64][]byte{}
	for i := uint64(0); i < 21; i++ {
		p, err := l.Entry(i, 0)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, p.Leaf)
	}
	// Roots by an independent implementation (compact ranges).
	rf := &compact.RangeFactory{Hash: h.HashChildren}
	cr := rf.NewEmptyRange(0)
	for i, leaf := range leaves {
		if err := cr.Append(h.HashLeaf(leaf), nil); err != nil {
			t.Fatal(err)
		}
		root, err := cr.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		roots[uint64(i+1)] = root
	}
	err := l.db.View(func(txn *badger.Txn) error {
		hr := hashReader{txn}
		for size := uint64(1); size <= 21; size++ {
			th, err := tlog.TreeHash(int64(size), hr)
			if err != nil {
				return err
			}
			if !bytes.Equal(th[:], roots[size]) {
				t.Errorf("tree hash at %d differs between tlog and compact ranges", size)
			}
			for i := uint64(0); i < size; i++ {
				// tlog proof, merkle verification.
				rp, err := tlog.ProveRecord(int64(size), int64(i), hr)
				if err != nil {
					return err
				}
				if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(leaves[i]), hashesOf(rp), roots[size]); err != nil {
					t.Errorf("tlog inclusion proof %d/%d rejected by merkle: %v", i, size, err)
				}
				// merkle proof from our stored hashes, tlog verification.
				mp, err := merkleInclusion(hr, i, size)
				if err != nil {
					return err
				}
				var rec tlog.RecordProof
				for _, b := range mp {
					rec = append(rec, tlog.Hash(b))
				}
				if err := tlog.CheckRecord(rec, int64(size), th, int64(i), tlog.RecordHash(leaves[i])); err != nil {
					t.Errorf("merkle inclusion proof %d/%d rejected by tlog: %v", i, size, err)
				}
			}
			for old := uint64(1); old <= size; old++ {
				tp, err := tlog.ProveTree(int64(size), int64(old), hr)
				if err != nil {
					return err
				}
				if err := proof.VerifyConsistency(h, old, size, hashesOf(tp), roots[old], roots[size]); err != nil {
					t.Errorf("tlog consistency proof %d-%d rejected by merkle: %v", old, size, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And the ledger's own methods.
	cp, err := l.ConsistencyProof(5, 21)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(h, 5, 21, hashesOf(cp), roots[5], roots[21]); err != nil {
		t.Errorf("ConsistencyProof(5, 21) rejected by merkle: %v", err)
	}
}

func hashesOf[T ~[]tlog.Hash](p T) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// merkleInclusion builds an inclusion proof with transparency-dev/merkle
// from the hashes the ledger stores (complete subtrees only).
func merkleInclusion(hr tlog.HashReader, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		got, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(int(id.Level), int64(id.Index))})
		if err != nil {
			return nil, err
		}
		hs[i] = got[0][:]
	}
	return nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
}

// TestRecordsAndSnapshot: Put/Get/Scan/Delete, and a Raft snapshot that
// carries the records and the tree into a fresh state machine.
func TestRecordsAndSnapshot(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	ctx := context.Background()
	for i := range 3 {
		if _, err := l.Put(ctx, "pins", fmt.Sprintf("FR/%d", i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Put(ctx, "users", "alice", []byte("auditor")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Delete(ctx, "pins", "FR/1"); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := l.Scan("pins", "FR/", func(k string, v []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[FR/0 FR/2]" {
		t.Errorf("Scan(pins, FR/) = %v; want [FR/0 FR/2]", keys)
	}
	if v, err := l.Get("users", "alice"); err != nil || string(v) != "auditor" {
		t.Errorf("Get(users, alice) = %q, %v", v, err)
	}
	if _, err := l.Get("pins", "FR/1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a deleted record = %v; want ErrNotFound", err)
	}
	if _, err := l.Put(ctx, "", "k", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Put with an empty namespace = %v; want ErrInvalid", err)
	}
	appendN(t, l, 0, 7)
	_, wantRoot, _ := l.TreeHead()

	// Snapshot through Raft, then restore it into a new state machine.
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatalf("raft snapshot: %v", err)
	}
	snaps, err := raft.NewFileSnapshotStore(l.cfg.Dir+"/snapshots", 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		t.Fatalf("snapshots = %v, %v", list, err)
	}
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := newFSM(db, l.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if m := f.meta(); m.size != 7 || m.applied != list[0].Index {
		t.Errorf("restored meta = %+v; want 7 entries applied to %d", m, list[0].Index)
	}
	err = db.View(func(txn *badger.Txn) error {
		n, root, err := treeHead(txn)
		if err != nil {
			return err
		}
		if n != 7 || root != wantRoot {
			t.Errorf("restored tree = %d %x; want 7 %x", n, root, wantRoot)
		}
		v, ok, err := getBytes(txn, recordKey("users", "alice"))
		if err != nil || !ok || string(v) != "auditor" {
			t.Errorf("restored record users/alice = %q, %v, %v", v, ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHaltOnStorageError: a state machine whose storage fails stops
// applying, reports the error and refuses everything after.
func TestHaltOnStorageError(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFSM(db, discard())
	if err != nil {
		t.Fatal(err)
	}
	cmd := func(id string) *raft.Log {
		e := entry(1)
		b, _ := jsonMarshal(&command{Op: opAppend, ID: id, Time: 1, Entry: &e})
		return &raft.Log{Index: 1, Type: raft.LogCommand, Data: b}
	}
	if r := f.Apply(cmd("a")); r.(outcome).Index != 0 {
		t.Fatalf("first Apply = %+v", r)
	}
	db.Close() // the disk goes away
	l2 := cmd("b")
	l2.Index = 2
	if r, ok := f.Apply(l2).(error); !ok || !errors.Is(r, ErrHalted) {
		t.Fatalf("Apply on a closed database = %v; want ErrHalted", r)
	}
	if f.halted() == nil {
		t.Fatal("state machine not halted after a storage error")
	}
	l3 := cmd("c")
	l3.Index = 3
	if r, ok := f.Apply(l3).(error); !ok || !errors.Is(r, ErrHalted) {
		t.Errorf("Apply after the halt = %v; want ErrHalted", r)
	}
	if m := f.meta(); m.applied != 1 || m.size != 1 {
		t.Errorf("meta after halt = %+v; want applied 1, one entry", m)
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
		t.Errorf("Snapshot after the halt = %v; want ErrHalted", err)
	}
}

// TestReadIsLogged: Read appends a ledger_read entry before answering.
func TestReadIsLogged(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	appendN(t, l, 0, 6)
	es, r, err := l.Read(context.Background(), "auditor-9", "annual review", Filter{Case: "case-2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Body.CaseRef != "case-2" {
		t.Errorf("Read(case-2) = %d entries; want 1", len(es))
	}
	p, err := l.Entry(r.Index, 0)
	if err != nil || p.Entry.Type != TypeLedgerRead || p.Entry.Body.Actor != "auditor-9" {
		t.Errorf("read entry = %+v, %v; want a ledger_read by auditor-9", p.Entry, err)
	}
	got, err := l.Entries(context.Background(), Filter{Types: []Type{TypeLedgerRead}, Limit: 5})
	if err != nil || len(got) != 1 {
		t.Errorf("Entries(ledger_read) = %d, %v; want 1", len(got), err)
	}
	from := got[0].Time
	if got, _ := l.Entries(context.Background(), Filter{From: from.Add(time.Nanosecond)}); len(got) != 0 {
		t.Errorf("Entries(from after the last entry) = %d; want 0", len(got))
	}
}

package ledger

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/mod/sumdb/tlog"
)

// TestCloseEndsGoroutines: after Close, nothing the ledger started runs.
func TestCloseEndsGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := open(t, testConfig(t.TempDir()))
	appendN(t, l, 0, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

func TestAppendReopen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, testConfig(dir))
	rs := appendN(t, l, 0, 20)
	for i, r := range rs {
		if !r.Appended || r.Index != uint64(i) || r.CommandID == "" {
			t.Fatalf("receipt %d = %+v; want index %d, appended, with a command ID", i, r, i)
		}
	}
	size, root, err := l.TreeHead()
	if err != nil || size != 20 {
		t.Fatalf("TreeHead() = %d, %v; want 20", size, err)
	}
	p, err := l.Entry(7, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Entry.RequestID != "req-7" || p.Entry.Body.Actor != "officer-7" || p.Entry.Agency != "GB" || p.Entry.Replica != "r1" {
		t.Errorf("Entry(7) = %+v; want req-7 by officer-7 from GB on r1", p.Entry)
	}
	if err := tlog.CheckRecord(p.Proof, int64(p.Size), p.Root, 7, tlog.RecordHash(p.Leaf)); err != nil {
		t.Errorf("inclusion proof of entry 7: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Reopen without identity or key: both come from the directory.
	l = open(t, Config{Dir: dir})
	defer l.Close()
	size2, root2, err := l.TreeHead()
	if err != nil || size2 != size || root2 != root {
		t.Fatalf("after reopen TreeHead() = %d %x, %v; want %d %x", size2, root2, err, size, root)
	}
	if _, err := l.Append(context.Background(), entry(99)); err != nil {
		t.Fatalf("Append after reopen: %v", err)
	}
	if st := l.Status(); st.Size != 21 || !st.Healthy || st.State != "Leader" || !st.Quorum {
		t.Errorf("Status() = %+v; want 21 entries, healthy leader", st)
	}
	// Without the key this replica serves the checkpoint signed at Close.
	cp, err := l.Checkpoint()
	if err != nil || cp.Size != 20 || cp.Root != root {
		t.Errorf("Checkpoint() = size %d root %x, %v; want the one signed at close (20, %x)", cp.Size, cp.Root, err, root)
	}
	if _, err := ParseCheckpoint(cp.Note, l.VerifierKey()); err != nil {
		t.Errorf("ParseCheckpoint of the served note: %v", err)
	}
}

func TestOpenRefusesOtherIdentity(t *testing.T) {
	dir := t.TempDir()
	l := open(t, testConfig(dir))
	l.Close()
	for _, cfg := range []Config{
		{Dir: dir, Agency: "FR"},
		{Dir: dir, ReplicaID: "r2"},
	} {
		if l, err := Open(context.Background(), cfg); !errors.Is(err, ErrInvalid) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Open(%+v) = %v; want ErrInvalid", cfg, err)
		}
	}
	if _, err := Open(context.Background(), Config{Dir: t.TempDir()}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open of a new directory without identity = %v; want ErrInvalid", err)
	}
}

// TestEncryptionAtRest: a directory created with a key opens with it and
// not without it.
func TestEncryptionAtRest(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.EncryptionKey = []byte("0123456789abcdef0123456789abcdef")
	l := open(t, cfg)
	appendN(t, l, 0, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	plain := testConfig(dir)
	if l, err := Open(context.Background(), plain); err == nil {
		l.Close()
		t.Fatal("Open of an encrypted directory without its key succeeded")
	}
	l = open(t, cfg)
	defer l.Close()
	if st := l.Status(); st.Size != 3 {
		t.Errorf("size after reopen with the key = %d; want 3", st.Size)
	}
}

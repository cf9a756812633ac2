package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSwap(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Swap(ctx, "w", "o", ValueDigest([]byte("x")), []byte("a")); !errors.Is(err, ErrConflict) {
		t.Fatalf("Swap of an absent record expecting a value = %v; want ErrConflict", err)
	}
	if _, err := l.Swap(ctx, "w", "o", Digest{}, []byte("a")); err != nil {
		t.Fatalf("Swap of an absent record = %v", err)
	}
	if _, err := l.Swap(ctx, "w", "o", Digest{}, []byte("b")); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Swap expecting absence = %v; want ErrConflict", err)
	}
	if _, err := l.Swap(ctx, "w", "o", ValueDigest([]byte("a")), []byte("b")); err != nil {
		t.Fatalf("Swap a->b = %v", err)
	}
	if _, err := l.Swap(ctx, "w", "o", ValueDigest([]byte("a")), []byte("c")); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Swap a->c = %v; want ErrConflict", err)
	}
	if v, err := l.Get("w", "o"); err != nil || string(v) != "b" {
		t.Fatalf("Get = %q, %v; want b", v, err)
	}
}

// TestSwapSurvivesLeaderLoss: what a swap committed is what the next leader
// compares with, so a writer that read the state before the failover
// cannot roll it back.
func TestSwapSurvivesLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("three replicas")
	}
	c := MakeCluster(t, 3)
	defer c.closeAll()
	ld := c.Leader()
	ctx := context.Background()
	if _, err := ld.l.Swap(ctx, "w", "o", Digest{}, []byte("size 5")); err != nil {
		t.Fatal(err)
	}
	if _, err := ld.l.Swap(ctx, "w", "o", ValueDigest([]byte("size 5")), []byte("size 9")); err != nil {
		t.Fatal(err)
	}
	c.stop(ld)
	var next *replica
	c.poll(20*time.Second, "a new leader", func() error {
		if next = c.Leader(); next == nil || next == ld {
			return errors.New("no new leader")
		}
		return nil
	})
	// A writer that read "size 5" before the failover loses.
	_, err := next.l.Swap(ctx, "w", "o", ValueDigest([]byte("size 5")), []byte("size 6"))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Swap from a stale read after failover = %v; want ErrConflict", err)
	}
	if v, err := next.l.Get("w", "o"); err != nil || string(v) != "size 9" {
		t.Fatalf("Get on the new leader = %q, %v; want size 9", v, err)
	}
}

// TestSwapAppend: the entry is appended iff the swap holds, in the same
// command: a conflict appends nothing and changes nothing; a swap that
// holds appends exactly one entry; a retry with the same command ID gets
// the first outcome (the entry, or the conflict) and appends nothing more.
func TestSwapAppend(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	ctx := context.Background()
	size := func() uint64 { return l.Status().Size }
	pin := func(i int) Entry {
		e := entry(i)
		e.Type, e.RequestID, e.Partner, e.Count = TypePartner, "", "DE", uint64(i)
		return e
	}

	// Absent expected, absent found: written and appended.
	first, err := l.SwapAppend(WithCommandID(ctx, "pin-1"), "pins", "DE", Digest{}, []byte("card 1"), pin(1))
	if err != nil || !first.Appended || size() != 1 {
		t.Fatalf("SwapAppend of an absent record = %+v, %v, size %d; want one entry appended", first, err, size())
	}
	p, err := l.Entry(first.Index, 0)
	if err != nil || p.Entry.Type != TypePartner || p.Entry.Count != 1 || p.Entry.Agency == "" {
		t.Fatalf("entry appended = %+v, %v; want the partner entry of card 1", p.Entry.Header, err)
	}
	// A retry of the same command: its first outcome, nothing appended,
	// though the record no longer holds what it expected.
	again, err := l.SwapAppend(WithCommandID(ctx, "pin-1"), "pins", "DE", Digest{}, []byte("card 1"), pin(1))
	if err != nil || again.Index != first.Index || again.RaftIndex != first.RaftIndex || size() != 1 {
		t.Errorf("retry of pin-1 = %+v, %v, size %d; want the first outcome %+v and size 1", again, err, size(), first)
	}

	// Two writers read card 1: the first wins, the second appends nothing.
	won, err := l.SwapAppend(ctx, "pins", "DE", ValueDigest([]byte("card 1")), []byte("card 3"), pin(3))
	if err != nil || !won.Appended || won.Index != 1 {
		t.Fatalf("SwapAppend card 1 -> 3 = %+v, %v; want entry 1", won, err)
	}
	lost, err := l.SwapAppend(WithCommandID(ctx, "pin-2"), "pins", "DE", ValueDigest([]byte("card 1")), []byte("card 2"), pin(2))
	if !errors.Is(err, ErrConflict) || lost.Appended {
		t.Fatalf("SwapAppend from a stale read = %+v, %v; want ErrConflict", lost, err)
	}
	if size() != 2 {
		t.Errorf("size %d after a conflict; want 2 (nothing appended)", size())
	}
	if v, err := l.Get("pins", "DE"); err != nil || string(v) != "card 3" {
		t.Errorf("Get = %q, %v; want card 3", v, err)
	}
	if r, err := l.Outcome("pin-2"); !errors.Is(err, ErrConflict) || r.Appended {
		t.Errorf("Outcome(pin-2) = %+v, %v; want the conflict, nothing appended", r, err)
	}
	// Its retry is the conflict still, even once the record holds what it
	// expected again.
	if _, err := l.Swap(ctx, "pins", "DE", ValueDigest([]byte("card 3")), []byte("card 1")); err != nil {
		t.Fatal(err)
	}
	if r, err := l.SwapAppend(WithCommandID(ctx, "pin-2"), "pins", "DE", ValueDigest([]byte("card 1")), []byte("card 2"), pin(2)); !errors.Is(err, ErrConflict) || r.Appended || size() != 2 {
		t.Errorf("retry of pin-2 = %+v, %v, size %d; want its first outcome, ErrConflict, size 2", r, err, size())
	}
	if v, err := l.Get("pins", "DE"); err != nil || string(v) != "card 1" {
		t.Errorf("Get = %q, %v; want card 1 (the retry changed nothing)", v, err)
	}
	// An entry that does not validate is refused before it is submitted.
	bad := pin(4)
	bad.Type = 0
	if _, err := l.SwapAppend(ctx, "pins", "DE", ValueDigest([]byte("card 1")), []byte("card 4"), bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("SwapAppend of an invalid entry = %v; want ErrInvalid", err)
	}
	if v, err := l.Get("pins", "DE"); err != nil || string(v) != "card 1" || size() != 2 {
		t.Errorf("Get = %q, %v, size %d; want card 1, 2: nothing written", v, err, size())
	}
	// DeleteAppend: the removal and its entry, both or neither.
	if r, err := l.DeleteAppend(ctx, "pins", "DE", ValueDigest([]byte("card 3")), pin(0)); !errors.Is(err, ErrConflict) || r.Appended || size() != 2 {
		t.Errorf("DeleteAppend from a stale read = %+v, %v, size %d; want ErrConflict, size 2", r, err, size())
	}
	if v, err := l.Get("pins", "DE"); err != nil || string(v) != "card 1" {
		t.Errorf("Get = %q, %v; want card 1 (the conflict deleted nothing)", v, err)
	}
	del, err := l.DeleteAppend(ctx, "pins", "DE", ValueDigest([]byte("card 1")), pin(0))
	if err != nil || !del.Appended || del.Index != 2 || size() != 3 {
		t.Fatalf("DeleteAppend = %+v, %v, size %d; want entry 2, size 3", del, err, size())
	}
	if _, err := l.Get("pins", "DE"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after DeleteAppend = %v; want ErrNotFound", err)
	}
}

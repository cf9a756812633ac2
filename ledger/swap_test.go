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

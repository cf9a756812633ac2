package ledger

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// TestBatchEstimate: under concurrent writers the batcher expects many
// callers back; when a single writer remains, one wait that runs out
// brings the estimate down to one, so that it does not wait again.
func TestBatchEstimate(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	defer l.Close()
	const writers = 32
	var peak atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, err := l.Append(context.Background(), entry(w*100+i)); err != nil {
					t.Error(err)
					return
				}
				if n := l.writers.Load(); n > peak.Load() {
					peak.Store(n)
				}
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p < writers/2 {
		t.Errorf("estimate of callers writing peaked at %d with %d writers; want at least %d", p, writers, writers/2)
	}
	appendN(t, l, 10_000, 3)
	if n := l.writers.Load(); n != 1 {
		t.Errorf("estimate after three appends by one writer = %d; want 1", n)
	}
	// Status counts the group commits and the state syncs (at least
	// Open's).
	st := l.Status()
	if st.BatchedCommands != writers*20+3 || st.Batches == 0 || st.Batches >= st.BatchedCommands || st.StateSyncs == 0 {
		t.Errorf("Status counters: %d batches of %d commands, %d state syncs; want %d commands in fewer batches and a sync",
			st.Batches, st.BatchedCommands, st.StateSyncs, writers*20+3)
	}
}

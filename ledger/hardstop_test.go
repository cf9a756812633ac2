package ledger

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const childEnv = "XBORDER_LEDGER_TEST_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	code := m.Run()
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

const (
	hardWriters = 16
	hardPer     = 625 // 16 × 625 = 10,000 appends
	inFlight    = 200 // acks of the second wave before the kill
)

// runChild appends hardWriters×hardPer entries concurrently, prints one
// "ack INDEX REQUEST" line per acknowledged entry, then "root SIZE HEX",
// then keeps appending until it is killed: the ledger is never closed.
func runChild(dir string) int {
	l, err := Open(context.Background(), testConfig(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 1
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := false
	for g := range hardWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range hardPer {
				e := entry(0)
				e.RequestID = fmt.Sprintf("g%02d-%04d", g, n)
				r, err := l.Append(context.Background(), e)
				mu.Lock()
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					failed = true
				} else {
					fmt.Fprintf(out, "ack %d %s\n", r.Index, e.RequestID)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed {
		return 1
	}
	size, root, err := l.TreeHead()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child tree head:", err)
		return 1
	}
	fmt.Fprintf(out, "root %d %s\n", size, hex.EncodeToString(root[:]))
	out.Flush()
	// Keep appending, one flushed line per ack, until the parent kills us
	// in the middle of it.
	for g := range hardWriters {
		go func() {
			for n := 0; ; n++ {
				e := entry(0)
				e.RequestID = fmt.Sprintf("h%02d-%06d", g, n)
				r, err := l.Append(context.Background(), e)
				if err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %s\n", r.Index, e.RequestID)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	select {} // killed by the parent
}

// TestHardStopRestart: 10,000 appends from 16 goroutines in a child
// process, then a second wave killed (SIGKILL, no Close) while appends are
// in flight, then a restart from the directory: every acknowledged entry is
// there exactly once, at its acknowledged index, the tree of the first
// 10,000 has the same root, and the Raft log replayed on restart appends
// nothing twice.
func TestHardStopRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	var wantSize uint64
	var wantRoot string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("child wrote %q", sc.Text())
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child wrote %q", sc.Text())
		}
		if f[0] == "root" {
			wantSize, wantRoot = n, f[2]
			continue
		}
		if prev, dup := acked[n]; dup {
			t.Fatalf("index %d acknowledged twice (%s, %s)", n, prev, f[2])
		}
		acked[n] = f[2]
		if wantRoot != "" && len(acked) >= hardWriters*hardPer+inFlight {
			break // kill while the second wave of appends is in flight
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if wantRoot == "" {
		t.Fatalf("child ended before reporting its root")
	}
	if wantSize != hardWriters*hardPer || len(acked) < hardWriters*hardPer+inFlight {
		t.Fatalf("child acknowledged %d entries, tree of %d at the first wave's end; want %d and at least %d more",
			len(acked), wantSize, hardWriters*hardPer, inFlight)
	}

	l := open(t, testConfig(dir))
	defer l.Close()
	size, _, err := l.TreeHead()
	if err != nil || size < uint64(len(acked)) {
		t.Fatalf("after restart TreeHead() = %d, %v; want at least the %d acknowledged entries", size, err, len(acked))
	}
	// The tree of the first wave is unchanged: same root at the same size.
	p, err := l.Entry(0, wantSize)
	if err != nil || hex.EncodeToString(p.Root[:]) != wantRoot {
		t.Fatalf("after restart the root at %d = %x, %v; want %s", wantSize, p.Root, err, wantRoot)
	}
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range es {
		seen[e.RequestID]++
		if id, ok := acked[e.Index]; ok && id != e.RequestID {
			t.Fatalf("entry %d holds %s; %s was acknowledged there", e.Index, e.RequestID, acked[e.Index])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("request %s present %d times; want once", id, n)
		}
	}
	for idx, id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged entry %d (%s) missing after restart", idx, id)
		}
	}
	wantSize = size
	// A new command makes the leader commit, so Raft replays its log into
	// the state machine; everything it replays is skipped.
	r, err := l.Append(context.Background(), entry(1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Index != wantSize {
		t.Errorf("first append after restart got index %d; want %d (a replay appended something)", r.Index, wantSize)
	}
	if l.fsm.skipped.Load() == 0 {
		t.Errorf("no replayed command was skipped; the test did not exercise replay")
	}
	if st := l.Status(); st.Size != wantSize+1 {
		t.Errorf("size after one more append = %d; want %d", st.Size, wantSize+1)
	}
}

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
)

// runChild appends hardWriters×hardPer entries concurrently, prints one
// "ack INDEX REQUEST" line per acknowledged entry, then "root SIZE HEX",
// and waits to be killed: the ledger is never closed.
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
	select {} // killed by the parent
}

// TestHardStopRestart: 10,000 appends from 16 goroutines in a child
// process, SIGKILL without Close, then a restart from the directory: every
// acknowledged entry is there exactly once, at its acknowledged index, with
// the same root; the Raft log replayed on restart appends nothing twice.
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
			break
		}
		if prev, dup := acked[n]; dup {
			t.Fatalf("index %d acknowledged twice (%s, %s)", n, prev, f[2])
		}
		acked[n] = f[2]
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if wantRoot == "" {
		t.Fatalf("child ended before reporting its root")
	}
	if len(acked) != hardWriters*hardPer || wantSize != uint64(len(acked)) {
		t.Fatalf("child acknowledged %d entries, tree of %d; want %d", len(acked), wantSize, hardWriters*hardPer)
	}

	l := open(t, testConfig(dir))
	defer l.Close()
	size, root, err := l.TreeHead()
	if err != nil || size != wantSize || hex.EncodeToString(root[:]) != wantRoot {
		t.Fatalf("after restart TreeHead() = %d %x, %v; want %d %s", size, root, err, wantSize, wantRoot)
	}
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range es {
		seen[e.RequestID]++
		if acked[e.Index] != e.RequestID {
			t.Fatalf("entry %d holds %s; %s was acknowledged there", e.Index, e.RequestID, acked[e.Index])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("request %s present %d times; want once", id, n)
		}
	}
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

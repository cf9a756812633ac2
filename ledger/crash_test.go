package ledger

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// The crash-point tests (docs/ledger.md, "Crash points"): a child process,
// this package's test binary built with the failpoints tag, runs a
// workload of appends, admissions and records, with snapshots; the one
// failpoint armed in it blocks there and says so, and the test kills the
// child with SIGKILL, restarts the replica from its directory, and checks
// every acknowledged entry at its index, the request IDs, records and
// budgets, and the roots the child reported.

// crashPoints lists every failpoint, with the workload that reaches it:
// "single", one replica that snapshots and compacts its log; "install", a
// replica added to a one-replica group whose log is compacted, so that it
// receives a snapshot and restores it.
var crashPoints = []struct{ name, mode string }{
	{"persist-partial", "single"},
	{"persist-before-close", "single"},
	{"persist-after-close", "single"},
	{"compact-before", "single"},
	{"compact-after", "single"},
	{"install-partial", "install"},
	{"install-before-close", "install"},
	{"install-after-close", "install"},
	{"restore-marked", "install"},
	{"restore-dropped", "install"},
	{"restore-partial", "install"},
	{"restore-flushed", "install"},
	{"restore-checked", "install"},
	{"restore-synced", "install"},
	{"restore-done", "install"},
}

// openRestorePoints are the failpoints of a restore that Open runs (a
// replica killed at install-after-close, restarted): each is reached a
// second time there and the replica killed again.
var openRestorePoints = []string{"restore-marked", "restore-dropped", "restore-partial", "restore-flushed",
	"restore-checked", "restore-synced", "restore-done"}

const (
	crashModeEnv = "XBORDER_LEDGER_CRASH_MODE"
	crashDirEnv  = "XBORDER_LEDGER_CRASH_DIR" // reopen: "ID DIR ADDR" of the replica
	crashOps     = 150                        // operations of the workload
	crashSnap    = 40                         // a snapshot every this many operations
	budgetKey    = "partner/FR/phone/DAY"
)

// crashTune: snapshots only when the workload asks, and a short log after
// them, so that compaction runs and a new replica needs the snapshot.
func crashTune(rc *raft.Config) {
	rc.SnapshotThreshold = 1 << 40
	rc.SnapshotInterval = 24 * time.Hour
	rc.TrailingLogs = 4
}

// failpointBinary builds this package's tests with the failpoints tag.
func failpointBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ledger.test")
	// The go command puts its GOROOT/bin first on the test's PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the failpoints test binary: %v", err)
	}
	out, err := exec.Command(gobin, "test", "-c", "-tags", "failpoints", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build the failpoints test binary: %v: %s", err, out)
	}
	return bin
}

// crashLog is what a child reported before it was killed.
type crashLog struct {
	entries  map[uint64]string // acknowledged entry index -> request ID
	records  map[string]string // acknowledged record key -> value
	roots    map[uint64]string // tree size -> root, hex
	replicas map[string][2]string
	reached  bool
}

// runCrashChild runs the workload mode in a child process with failpoint
// point armed, kills it with SIGKILL once the point is reached, and
// returns what it acknowledged.
func runCrashChild(t *testing.T, bin, mode, point, dir string) crashLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashModeEnv+"="+mode, crashDirEnv+"="+dir, failpointEnv+"="+point)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := crashLog{entries: map[uint64]string{}, records: map[string]string{}, roots: map[uint64]string{}, replicas: map[string][2]string{}}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "failpoint" && len(f) == 2 && f[1] == point:
			log.reached = true
		case (f[0] == "append" || f[0] == "admit" || f[0] == "root") && len(f) == 3:
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("child wrote %q", sc.Text())
			}
			if f[0] == "root" {
				log.roots[n] = f[2]
			} else {
				log.entries[n] = f[2]
			}
		case f[0] == "put" && len(f) == 3:
			log.records[f[1]] = f[2]
		case f[0] == "replica" && len(f) == 4:
			log.replicas[f[1]] = [2]string{f[2], f[3]}
		}
		if log.reached {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !log.reached {
		t.Fatalf("the child ended without reaching failpoint %s", point)
	}
	t.Logf("failpoint %s: killed the child there, after %d acknowledged entries, %d records, %d roots",
		point, len(log.entries), len(log.records), len(log.roots))
	return log
}

// TestCrashPoints kills a replica at every failpoint and checks what it
// acknowledged after a restart.
func TestCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary and kills a child per failpoint")
	}
	bin := failpointBinary(t)
	for _, p := range crashPoints {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			log := runCrashChild(t, bin, p.mode, p.name, dir)
			switch p.mode {
			case "single":
				l := open(t, crashConfig(dir))
				defer l.Close()
				checkCrash(t, l, log, true)
			case "install":
				checkInstallCrash(t, log)
			}
		})
	}
	for _, p := range openRestorePoints {
		t.Run("open-"+p, func(t *testing.T) {
			log := runCrashChild(t, bin, "install", "install-after-close", t.TempDir())
			r2, ok := log.replicas["r2"]
			if !ok {
				t.Fatal("the child did not report replica r2")
			}
			runCrashChild(t, bin, "reopen", p, "r2 "+r2[0]+" "+r2[1])
			checkInstallCrash(t, log)
		})
	}
}

// crashConfig is a crash test's ledger: with a storage key, as a node
// runs it, so that the snapshots crashed in are encrypted (snapcrypt.go).
func crashConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.tune = crashTune
	cfg.EncryptionKey = snapKey
	return cfg
}

// checkInstallCrash restarts the replica killed while it received or
// restored a snapshot, alone first: its state is a prefix of what was
// acknowledged, each entry at its index. Then the first replica too: once
// they agree, both hold everything acknowledged.
func checkInstallCrash(t *testing.T, log crashLog) {
	t.Helper()
	c := newCluster(t)
	c.key = snapKey
	c.tune = func(rc *raft.Config) { fastRaft(rc); crashTune(rc) }
	var reps []*replica
	for _, id := range []string{"r1", "r2"} {
		d, ok := log.replicas[id]
		if !ok {
			t.Fatalf("the child did not report replica %s", id)
		}
		r := &replica{id: id, dir: d[0], addr: d[1], tls: c.tlsConfig(id, c.ca)}
		c.reps = append(c.reps, r)
		reps = append(reps, r)
	}
	c.start(reps[1], false)
	n, _, _ := reps[1].l.TreeHead()
	t.Logf("%s restarted alone with %d entries", reps[1].id, n)
	checkCrash(t, reps[1].l, log, false)
	c.start(reps[0], false)
	c.converge()
	for _, r := range reps {
		checkCrash(t, r.l, log, true)
	}
}

// checkCrash checks l against what the child acknowledged: every entry at
// its index (when all is set; else the entries l holds are at their
// acknowledged indexes), no request ID twice, every request ID of an
// admitted entry spent, the budget equal to the admitted entries, every
// acknowledged record, and the roots the child reported at the sizes l has.
func checkCrash(t *testing.T, l *Ledger, log crashLog, all bool) {
	t.Helper()
	es, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	admitted := uint64(0)
	for i, e := range es {
		if e.Index != uint64(i) {
			t.Fatalf("entry %d carries index %d", i, e.Index)
		}
		if seen[e.RequestID] {
			t.Errorf("request %s held twice", e.RequestID)
		}
		seen[e.RequestID] = true
		if id, ok := log.entries[e.Index]; ok && id != e.RequestID {
			t.Errorf("entry %d holds %s; %s was acknowledged there", e.Index, e.RequestID, id)
		}
		if e.Type == TypeMatchIn {
			admitted++
		}
	}
	if all {
		for i, id := range log.entries {
			if i >= uint64(len(es)) {
				t.Errorf("acknowledged entry %d (%s) missing: %d entries", i, id, len(es))
			}
		}
		for k, v := range log.records {
			if got, err := l.Get("pins", k); err != nil || string(got) != v {
				t.Errorf("acknowledged record pins/%s = %q, %v; want %q", k, got, err, v)
			}
		}
	}
	err = l.db.View(func(txn *badger.Txn) error {
		for _, e := range es {
			if e.Type != TypeMatchIn {
				continue
			}
			if _, ok, err := getBytes(txn, []byte(pfxRequest+e.RequestID)); err != nil || !ok {
				t.Errorf("request ID %s of admitted entry %d not spent (%v)", e.RequestID, e.Index, err)
			}
		}
		used := uint64(0)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxBudget + "partner/FR/phone/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := it.Item().Value(func(v []byte) error { used += binary.BigEndian.Uint64(v); return nil }); err != nil {
				return err
			}
		}
		if used != admitted {
			t.Errorf("budget used %d; want %d, the admitted entries", used, admitted)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for n, want := range log.roots {
		if n > uint64(len(es)) || n == 0 {
			continue
		}
		p, err := l.Entry(0, n)
		if err != nil || hex.EncodeToString(p.Root[:]) != want {
			t.Errorf("root at %d = %x, %v; the child reported %s", n, p.Root, err, want)
		}
		checked++
	}
	if all && len(log.roots) > 0 && checked == 0 {
		t.Errorf("no reported root at or below %d entries", len(es))
	}
}

// TestCrashChild is the child of TestCrashPoints: it runs only with
// crashModeEnv set.
func TestCrashChild(t *testing.T) {
	mode, dir := os.Getenv(crashModeEnv), os.Getenv(crashDirEnv)
	if mode == "" {
		t.Skip("the child of TestCrashPoints")
	}
	var mu sync.Mutex
	emit := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.Write([]byte(fmt.Sprintf(format, args...) + "\n"))
	}
	switch mode {
	case "single":
		l := open(t, crashConfig(dir))
		crashWorkload(t, l, emit)
	case "install":
		c := newCluster(t)
		c.key = snapKey
		c.tune = func(rc *raft.Config) { fastRaft(rc); crashTune(rc) }
		c.base = dir
		r1 := c.newReplica("r1", c.ca)
		c.start(r1, true)
		emit("replica r1 %s %s", r1.dir, r1.addr)
		crashWorkload(t, r1.l, emit)
		r2 := c.newReplica("r2", c.ca)
		c.start(r2, false)
		emit("replica r2 %s %s", r2.dir, r2.addr)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r1.l.AddVoter(ctx, r2.id, r2.addr); err != nil {
			t.Fatalf("add r2: %v", err)
		}
		c.converge()
	case "reopen":
		f := strings.Fields(dir)
		c := newCluster(t)
		c.key = snapKey
		c.tune = func(rc *raft.Config) { fastRaft(rc); crashTune(rc) }
		r := &replica{id: f[0], dir: f[1], addr: f[2], tls: c.tlsConfig(f[0], c.ca)}
		c.reps = append(c.reps, r)
		c.start(r, false)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	emit("done")
	select {} // the parent kills the child
}

// crashWorkload appends, admits and puts records in turn, reporting each
// acknowledgement and every 10 operations the root, and snapshots every
// crashSnap operations.
func crashWorkload(t *testing.T, l *Ledger, emit func(string, ...any)) {
	ctx := context.Background()
	for i := range crashOps {
		e := entry(i)
		switch i % 3 {
		case 0:
			e.RequestID = fmt.Sprintf("a-%04d", i)
			r, err := l.Append(ctx, e)
			if err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
			emit("append %d %s", r.Index, e.RequestID)
		case 1:
			e.Type, e.RequestID = TypeMatchIn, fmt.Sprintf("m-%04d", i)
			r, err := l.Admit(ctx, Admission{Entry: e, Reserve: []Reservation{{Key: budgetKey, Amount: 1, Limit: 1 << 40}}})
			if err != nil {
				t.Fatalf("admit %d: %v", i, err)
			}
			emit("admit %d %s", r.Index, e.RequestID)
		case 2:
			k, v := fmt.Sprintf("k-%04d", i), fmt.Sprintf("v-%04d", i)
			if _, err := l.Put(ctx, "pins", k, []byte(v)); err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
			emit("put %s %s", k, v)
		}
		if (i+1)%crashSnap == 0 {
			if err := l.raft.Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}
		if (i+1)%10 == 0 {
			n, root, err := l.TreeHead()
			if err != nil {
				t.Fatal(err)
			}
			emit("root %d %s", n, hex.EncodeToString(root[:]))
		}
	}
}

package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/policy"
)

// testClock is a clock that tests move forward.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// startClockedAgency starts a three-replica agency cc whose replicas all
// read clock, with the example policy applied.
func startClockedAgency(t *testing.T, cc string, clock *testClock) (*testNode, []*Node) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	open := func(dir string) *Node {
		n, err := Open(context.Background(), Config{Dir: dir, Logger: log, WatchInterval: 50 * time.Millisecond, Now: clock.Now})
		if err != nil {
			t.Fatalf("Open(%s): %v", dir, err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Errorf("Close(%s): %v", dir, err)
			}
		})
		return n
	}
	dir := filepath.Join(t.TempDir(), cc+"-r1")
	res, err := Init(InitConfig{Dir: dir, Agency: cc, Name: "Agency " + cc})
	if err != nil {
		t.Fatalf("Init(%s): %v", cc, err)
	}
	r1 := open(dir)
	poll(t, "r1 ready", time.Minute, func() bool { return r1.Ready() == nil })
	poll(t, "admin seeded", time.Minute, func() bool { _, err := r1.Audit().Get(nsNode, adminSeeded); return err == nil })
	tok, err := ReadToken(res.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	first := &testNode{Node: r1, dir: dir, admin: &httpapi.Client{BaseURL: r1.APIURL(), Token: tok}}
	nodes := []*Node{r1}
	for _, id := range []string{"r2", "r3"} {
		b, err := r1.replicas.NewBundle(id, nil)
		if err != nil {
			t.Fatalf("NewBundle(%s): %v", id, err)
		}
		d := filepath.Join(t.TempDir(), cc+"-"+id)
		if _, err := InitFromBundle(d, b, ListenConfig{}); err != nil {
			t.Fatalf("InitFromBundle(%s): %v", id, err)
		}
		nodes = append(nodes, open(d))
	}
	for _, n := range nodes {
		poll(t, "replica member", time.Minute, func() bool { return n.Ready() == nil && n.replicas.isMember(n.fc.ReplicaID()) })
	}
	applyExamplePolicy(t, first)
	for _, n := range nodes {
		poll(t, "policy in force on every replica", time.Minute, func() bool {
			v := n.Policy().Version()
			return v != policy.Default().Version() && v == r1.Policy().Version()
		})
	}
	return first, nodes
}

// metricValue reads a gauge or counter.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// beginRows opens an import of phone numbers and sends values in batches
// of size, without committing it.
func beginRows(t *testing.T, cl *httpapi.Client, size int, values []string) string {
	t.Helper()
	ctx := context.Background()
	im, err := cl.BeginImport(ctx, httpapi.BeginImport{Kind: "phone", Region: "GB"})
	if err != nil {
		t.Fatalf("BeginImport: %v", err)
	}
	for lo := 0; lo < len(values); lo += size {
		var rows []httpapi.Row
		for i, v := range values[lo:min(lo+size, len(values))] {
			rows = append(rows, httpapi.Row{Line: lo + i + 2, Value: v})
		}
		if _, err := cl.ImportRows(ctx, im.ID, rows); err != nil {
			t.Fatalf("ImportRows: %v", err)
		}
	}
	return im.ID
}

func phoneRows(kind string, st httpapi.DataStats) int {
	for _, k := range st.Kinds {
		if k.Kind == kind {
			return k.Rows
		}
	}
	return 0
}

// batchesOf counts the batch records of an import on n.
func batchesOf(t *testing.T, n *Node, id string) int {
	t.Helper()
	c := 0
	if err := n.Data().Scan(nsRows, "phone/"+id+"/", func(string, []byte) error { c++; return nil }); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAbandonedImports walks the life of orphan batches on a
// three-replica agency: an import abandoned after some batches is not
// held (data stats, the duplicate index), a re-run of the same file
// stores and sets every row, a re-run while the abandoned import is still
// open takes its batches over, and the data group's leader deletes the
// orphans once their import's lifetime is over (the clock moved forward).
func TestAbandonedImports(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	clock := &testClock{}
	r1, nodes := startClockedAgency(t, "GB", clock)
	st := steward(t, r1, nodes[1].APIURL()) // imports go through r2
	poll(t, "r2 knows the steward", time.Minute, func() bool { _, err := st.DataStats(ctx); return err == nil })
	values := make([]string, 32)
	for i := range values {
		values[i] = fmt.Sprintf("07700 9%05d", i)
	}
	held := func(v string) bool {
		c, _ := ident.Canonical(ident.Phone, v, ident.Options{Region: "GB"})
		ls := nodes[1].sets.get("phone", 1, reachOpen)
		if ls == nil {
			return false
		}
		out := output(t, nodes[1], ident.Phone, c, 1)
		ls.mu.Lock()
		defer ls.mu.Unlock()
		return ls.recorded > 0 && ls.view.Contains(out)
	}

	// 1. Ten rows committed; an import of the next ten in two batches is
	// abandoned (the steward's client gave up) and, an hour later, closed.
	importRows(t, st, "phone", values[:10]...)
	abandoned := beginRows(t, st, 5, values[10:20])
	s, err := st.DataStats(ctx)
	if err != nil || phoneRows("phone", s) != 20 {
		t.Fatalf("stats while the import is open: %d phone rows, %v; want 20 (10 held, 10 open)", phoneRows("phone", s), err)
	}
	clock.Advance(ImportIdle + time.Minute)
	poll(t, "the abandoned import closed", time.Minute, func() bool {
		nodes[1].holdings.mu.Lock()
		defer nodes[1].holdings.mu.Unlock()
		return nodes[1].holdings.imports[abandoned] == nil
	})
	if got := batchesOf(t, nodes[1], abandoned); got != 2 {
		t.Fatalf("%d batch records of the abandoned import; want 2 orphans", got)
	}
	if s, _ := st.DataStats(ctx); phoneRows("phone", s) != 10 {
		t.Errorf("stats count %d phone rows; want 10 (orphans not counted)", phoneRows("phone", s))
	}
	if _, err := st.CommitImport(ctx, abandoned, httpapi.CommitImport{}); err == nil {
		t.Errorf("a closed import could still be committed")
	}

	// 2. The same file again: the abandoned rows are stored again, and
	// reach the set.
	rr, res := importRows(t, st, "phone", values[:20]...)
	if res.Imported != 10 || res.Duplicates != 10 || rr.Stored != 10 {
		t.Fatalf("re-run = %+v, %+v; want 10 imported, 10 duplicates", rr, res)
	}
	poll(t, "an abandoned row in the set", time.Minute, func() bool { return held(values[12]) })
	if s, _ := st.DataStats(ctx); phoneRows("phone", s) != 20 {
		t.Errorf("stats count %d phone rows; want 20", phoneRows("phone", s))
	}

	// 3. An import left open (abandoned, but not closed yet) while
	// overlapping rows are imported: the second import refers to the
	// open one's batch it covers whole (24-27) and stores the rows of the
	// other (22, 23) itself, so nothing it imported is lost when the
	// first never commits; 20 and 21 stay in an orphan.
	open := beginRows(t, st, 4, values[20:28])
	rr, res = importRows(t, st, "phone", values[22:32]...)
	if res.Imported != 10 || res.Duplicates != 0 || rr.Stored != 10 {
		t.Fatalf("import beside an open import = %+v, %+v; want 10 imported", rr, res)
	}
	if got := batchesOf(t, nodes[1], res.ID); got != 2 {
		t.Errorf("the import stored %d batches; want 2 (28-31, then 22-23)", got)
	}
	poll(t, "rows of the open import in the set", time.Minute, func() bool { return held(values[22]) && held(values[25]) })
	if s, _ := st.DataStats(ctx); phoneRows("phone", s) != 34 {
		// 30 held, and the open import's first batch while it is open.
		t.Errorf("stats count %d phone rows; want 34", phoneRows("phone", s))
	}

	// 4. A day later the orphans are deleted by the data group's leader;
	// the batch the second import refers to is kept.
	clock.Advance(OrphanAge)
	var leader *Node
	poll(t, "orphans deleted", time.Minute, func() bool {
		for _, n := range nodes {
			if n.holdings.omet != nil && metricValue(t, n.holdings.omet.deleted.WithLabelValues("batches")) == 3 {
				leader = n
			}
		}
		return leader != nil && batchesOf(t, nodes[0], abandoned) == 0 && batchesOf(t, nodes[0], open) == 1
	})
	if got := metricValue(t, leader.holdings.omet.deleted.WithLabelValues("rows")); got != 14 {
		t.Errorf("%v orphan rows deleted; want 14", got)
	}
	if got := metricValue(t, leader.holdings.omet.found.WithLabelValues("batches")); got != 3 {
		t.Errorf("the pass found %v orphan batches; want 3", got)
	}
	if s, _ := st.DataStats(ctx); phoneRows("phone", s) != 30 {
		t.Errorf("stats count %d phone rows after the collection; want 30", phoneRows("phone", s))
	}
	for i, v := range values {
		if want := i != 20 && i != 21; held(v) != want {
			t.Errorf("row %d in the set: %v; want %v", i, !want, want)
		}
	}
	m, err := nodes[1].holdings.manifest("phone", 1)
	if err != nil || !strings.Contains(fmt.Sprint(m.Versions), open+"/000001") {
		t.Errorf("manifest %v, %v; want the open import's second batch in it", m.Versions, err)
	}
}

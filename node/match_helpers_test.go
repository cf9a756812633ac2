package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/policy"
)

// syncBuf is a log sink the test searches afterwards.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// agency is one agency of a matching test: its replicas and their data
// directories. Replica i can be stopped and opened again.
type agency struct {
	t     testing.TB
	cc    string
	dirs  []string
	nodes []*Node // nil while stopped
	logs  *syncBuf
}

// The users of the matching tests.
var (
	ivan  = httpapi.User{Name: "ivan", Role: "investigator"}
	alice = httpapi.User{Name: "alice", Role: "approver"}
	stew  = httpapi.User{Name: "stew", Role: "steward"}
)

// startAgency inits agency cc with one replica, joins replicas-1 more,
// and applies the matching policy. Every log line of every replica, at
// debug level, goes to logs.
func startAgency(t testing.TB, cc string, replicas int, logs *syncBuf) *agency {
	t.Helper()
	a := &agency{t: t, cc: cc, logs: logs}
	dir := filepath.Join(t.TempDir(), cc+"-r1")
	if _, err := Init(InitConfig{Dir: dir, Agency: cc, Name: "Agency " + cc}); err != nil {
		t.Fatalf("Init(%s): %v", cc, err)
	}
	a.dirs = append(a.dirs, dir)
	a.nodes = append(a.nodes, nil)
	a.open(0)
	first := a.nodes[0]
	until(t, cc+" admin seeded", func() bool { _, err := first.Audit().Get(nsNode, adminSeeded); return err == nil })
	for i := 1; i < replicas; i++ {
		id := fmt.Sprintf("r%d", i+1)
		b, err := first.replicas.NewBundle(id, nil)
		if err != nil {
			t.Fatalf("NewBundle(%s): %v", id, err)
		}
		d := filepath.Join(t.TempDir(), cc+"-"+id)
		if _, err := InitFromBundle(d, b, ListenConfig{}); err != nil {
			t.Fatalf("InitFromBundle(%s): %v", id, err)
		}
		a.dirs = append(a.dirs, d)
		a.nodes = append(a.nodes, nil)
		a.open(i)
	}
	for _, n := range a.nodes {
		until(t, cc+" replica member", func() bool { return n.Ready() == nil && member(n) })
	}
	if replicas > 1 {
		until(t, cc+" card lists every replica", func() bool {
			c, err := first.cards.OwnCard()
			return err == nil && len(c.Replicas) == replicas
		})
	}
	v, err := first.policy.ApplyPolicy(context.Background(), "user:admin", policy.Files{PolicyName: "policy.cedar",
		Policy: []byte(matchPolicy + matchAdmins), LimitsName: "limits.yaml", Limits: []byte(matchLimits)}, first.users.policyManagers)
	if err != nil {
		t.Fatalf("%s ApplyPolicy: %v", cc, err)
	}
	for _, n := range a.nodes {
		until(t, cc+" policy in force", func() bool { return n.Policy().Version() == v })
	}
	return a
}

// open starts replica i (again) from its directory.
func (a *agency) open(i int) {
	t := a.t
	t.Helper()
	log := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, Config{Dir: a.dirs[i], Logger: log, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s replica %d): %v", a.cc, i+1, err)
	}
	a.nodes[i] = n
	t.Cleanup(func() { a.stop(i) })
}

// stop closes replica i if it runs.
func (a *agency) stop(i int) {
	if n := a.nodes[i]; n != nil {
		a.nodes[i] = nil
		if err := n.Close(); err != nil {
			a.t.Errorf("Close(%s replica %d): %v", a.cc, i+1, err)
		}
	}
}

// leader returns the running replica that leads the audit group.
func (a *agency) leader() *Node {
	a.t.Helper()
	var l *Node
	until(a.t, a.cc+" leader", func() bool {
		for _, n := range a.nodes {
			if n != nil && n.Audit().Status().State == "Leader" && n.Ready() == nil {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// running returns the running replicas.
func (a *agency) running() []*Node {
	var out []*Node
	for _, n := range a.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// pin makes a pin b's current card, and waits until every replica of a
// admits it.
func (a *agency) pin(b *agency) {
	t := a.t
	t.Helper()
	c, err := b.leader().cards.OwnCard()
	if err != nil {
		t.Fatalf("%s OwnCard: %v", b.cc, err)
	}
	if _, err := a.leader().cards.PinCard(context.Background(), "user:admin", c, c.Fingerprint()); err != nil {
		t.Fatalf("%s pins %s: %v", a.cc, b.cc, err)
	}
	for _, n := range a.running() {
		until(t, a.cc+" pins "+b.cc, func() bool { _, ok := n.cards.Pins()[b.cc]; return ok })
	}
}

// hold imports values (as the holder spells them) of kind and waits until
// every running replica answers with the set that holds them.
func (a *agency) hold(kind, region string, values ...string) {
	t := a.t
	t.Helper()
	ctx := context.Background()
	n := a.leader()
	imp, err := n.holdings.BeginImport(ctx, stew, httpapi.BeginImport{Kind: kind, Region: region})
	if err != nil {
		t.Fatalf("%s BeginImport(%s): %v", a.cc, kind, err)
	}
	for lo := 0; lo < len(values); lo += MaxImportBatch {
		hi := min(lo+MaxImportBatch, len(values))
		rows := make([]httpapi.Row, 0, hi-lo)
		for i, v := range values[lo:hi] {
			rows = append(rows, httpapi.Row{Line: lo + i + 1, Value: v})
		}
		if r, err := n.holdings.ImportRows(ctx, stew, imp.ID, rows); err != nil || len(r.Invalid) > 0 {
			t.Fatalf("%s ImportRows: %d invalid, %v", a.cc, len(r.Invalid), err)
		}
	}
	res, err := n.holdings.CommitImport(ctx, stew, imp.ID, httpapi.CommitImport{})
	if err != nil {
		t.Fatalf("%s CommitImport: %v", a.cc, err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for _, r := range a.running() {
		for {
			if _, v, ok := r.sets.responder(kind, r.epochs.currentEpoch(), reachOpen); ok && v >= uint64(res.Version) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %s set of version %d built", a.cc, kind, res.Version)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// canon returns the canonical forms of values, as the CLI sends them.
func canon(t testing.TB, kind, region string, values ...string) []string {
	t.Helper()
	k, err := ident.ParseKind(kind)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(values))
	for i, v := range values {
		if out[i], err = ident.Canonical(k, v, ident.Options{Region: region}); err != nil {
			t.Fatalf("Canonical(%q): %v", v, err)
		}
	}
	return out
}

// recorder keeps every byte read from and written to the streams it wraps.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

type recStream struct {
	exchange.Stream
	r *recorder
}

func (s recStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	s.r.mu.Lock()
	s.r.buf.Write(p[:n])
	s.r.mu.Unlock()
	return n, err
}

func (s recStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	s.r.mu.Lock()
	s.r.buf.Write(p[:n])
	s.r.mu.Unlock()
	return n, err
}

func (r *recorder) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}

// record makes n's host record every match and sync stream it serves.
func (r *recorder) record(n *Node) {
	n.host.Handle(exchange.ProtoMatch, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		n.xsrv.HandleMatch(ctx, from, recStream{st, r})
	})
	n.host.Handle(exchange.ProtoSync, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		n.xsrv.HandleSync(ctx, from, recStream{st, r})
	})
}

// secrets returns, for each canonical identifier, the byte strings that
// must appear nowhere: the identifier, its OPRF input frame, and the
// SHA-256 of both, raw and in hex.
func secrets(kind string, canonical []string) map[string][][]byte {
	k, _ := ident.ParseKind(kind)
	out := map[string][][]byte{}
	for _, c := range canonical {
		in := ident.Input(k, c)
		s1, s2 := sha256.Sum256([]byte(c)), sha256.Sum256(in)
		out[c] = [][]byte{[]byte(c), in, s1[:], s2[:], []byte(hex.EncodeToString(s1[:])), []byte(hex.EncodeToString(s2[:]))}
	}
	return out
}

// mustNotContain fails when data holds any of the secrets.
func mustNotContain(t *testing.T, what string, data []byte, secrets map[string][][]byte) {
	t.Helper()
	for c, forms := range secrets {
		for i, f := range forms {
			if bytes.Contains(data, f) {
				t.Errorf("%s contains identifier %q (form %d)", what, c, i)
			}
		}
	}
}

var _ io.Writer = (*syncBuf)(nil)

// matchAdmins lets the admins manage: Cedar decides the admin verbs once a
// policy is in force, and a policy without it is refused.
const matchAdmins = `
@id("admins") permit (principal in Role::"admin", action in [Action::"manage_users", Action::"manage_partners", Action::"manage_keys", Action::"manage_policy"], resource == Node::"local");
`

const matchPolicy = `
@id("gb") permit (principal == Agency::"GB", action in [Action::"match", Action::"sync"], resource is Kind);
@id("th") permit (principal == Agency::"TH", action in [Action::"match", Action::"sync"], resource is Kind);
@id("de") permit (principal == Agency::"DE", action in [Action::"match", Action::"sync"], resource is Kind);
@id("investigators") permit (principal in Role::"investigator", action in [Action::"match", Action::"sync"], resource is Kind);
@id("approvers") permit (principal in Role::"approver", action == Action::"approve", resource is Kind);
@id("stewards") permit (principal in Role::"steward", action == Action::"import", resource is Kind);
@id("auditors") permit (principal in Role::"auditor", action in [Action::"read_ledger", Action::"export"], resource == Node::"local");
`

// The email budget of a partner is 8 padded identifiers a day: two
// queries of 4.
const matchLimits = `version: 1
offences: [thb, forced_labour]
retention: 30d
kinds:
  phone: {daily_cap: 1000000, key_evaluations: 10000000}
  email: {daily_cap: 1000000, key_evaluations: 10000000}
partners:
  GB:
    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2}
    email: {max_query: 8, daily_budget: 8, disclosure: hits, handling: H2}
  TH:
    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2}
  DE:
    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2}
    email: {max_query: 8, daily_budget: 8, disclosure: hits, handling: H2}
approval:
  offences: [forced_labour]
`

// until polls cond until it holds or a minute passes.
func until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// member reports whether n is a member of its audit group.
func member(n *Node) bool {
	ms, err := n.Audit().Members()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.ID == n.fc.ReplicaID() {
			return true
		}
	}
	return false
}

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/node/host"
	"github.com/xborder/xborder/policy"
)

// testNode is a running node with an admin client.
type testNode struct {
	*Node
	dir   string
	admin *httpapi.Client
}

// startNode inits a data directory for agency cc and starts it, waiting
// until it is ready and its admin can log in. The node is closed when the
// test ends.
func startNode(t *testing.T, cc string) *testNode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node-"+cc)
	res, err := Init(InitConfig{Dir: dir, Agency: cc, Name: "Agency " + cc})
	if err != nil {
		t.Fatalf("Init(%s): %v", cc, err)
	}
	n := openNode(t, dir)
	tok, err := ReadToken(res.AdminTokenFile)
	if err != nil {
		t.Fatalf("ReadToken: %v", err)
	}
	tn := &testNode{Node: n, dir: dir, admin: &httpapi.Client{BaseURL: n.APIURL(), Token: tok}}
	waitFor(t, cc+" admin seeded", func() bool {
		_, err := n.Audit().Get(nsNode, adminSeeded)
		return err == nil
	})
	return tn
}

// openNode opens the node in dir and waits for it to be ready.
func openNode(t *testing.T, dir string) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := Open(ctx, Config{Dir: dir, Logger: log, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	waitFor(t, "node ready", func() bool { return n.Ready() == nil })
	return n
}

// waitFor polls cond until it holds or 30 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNodeServesAPI(t *testing.T) {
	noLeaks(t)
	n := startNode(t, "GB")
	ctx := context.Background()

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, n.APIURL()+path); code != http.StatusOK {
			t.Errorf("GET %s = %d %s; want 200", path, code, body)
		}
	}
	st, err := n.admin.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Agency != "GB" || len(st.Groups) != 2 || st.Groups[0].State != "Leader" || st.Groups[1].State != "Leader" {
		t.Errorf("Status = %+v; want agency GB, both groups led by this replica", st)
	}
	// The API URL is recorded for the CLI.
	if b, err := os.ReadFile(filepath.Join(n.dir, APIURLFile)); err != nil || strings.TrimSpace(string(b)) != n.APIURL() {
		t.Errorf("%s = %q, %v; want %s", APIURLFile, b, err, n.APIURL())
	}

	// Unauthenticated calls are refused.
	anon := &httpapi.Client{BaseURL: n.APIURL(), Token: "xbt_wrong"}
	if _, err := anon.Users(ctx); !errors.Is(err, httpapi.ErrUnauthorized) {
		t.Errorf("Users with a bad token: %v; want ErrUnauthorized", err)
	}

	// The watch loop refreshes the Raft gauges on its next tick.
	var code int
	var body string
	waitFor(t, "raft state in the metrics", func() bool {
		code, body = get(t, n.APIURL()+"/metrics")
		return strings.Contains(body, `xborder_raft_state{group="data"} 2`) && strings.Contains(body, `xborder_raft_state{group="audit"} 2`)
	})
	for _, want := range []string{`xborder_raft_state{group="audit"} 2`, `xborder_raft_state{group="data"} 2`,
		`xborder_api_requests_total{route="GET /v1/users",status="401"} 1`, "xborder_connected_partners 0",
		"xborder_ledger_commit_seconds_bucket", `xborder_policy_info{version="` + n.Policy().Version() + `"} 1`,
		`xborder_ledger_batches_total{group="audit"}`, `xborder_ledger_batched_commands_total{group="data"}`,
		`xborder_ledger_state_syncs_total{group="audit"}`, `xborder_ledger_state_sync_seconds_total{group="data"}`,
		`xborder_ledger_forward_dials_total{group="audit"}`, `xborder_ledger_refused_connections_total{group="audit"} 0`,
		`xborder_ledger_refused_rpcs_total{group="data"} 0`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET /metrics = %d; missing %q", code, want)
		}
	}
}

func TestNodeRoles(t *testing.T) {
	noLeaks(t)
	n := startNode(t, "GB")
	ctx := context.Background()
	client := func(role string) *httpapi.Client {
		u, err := n.admin.AddUser(ctx, role+"1", role)
		if err != nil {
			t.Fatalf("AddUser(%s): %v", role, err)
		}
		if len(u.Token) < 64 {
			t.Fatalf("AddUser(%s) token %d characters; want 32 random bytes in hex", role, len(u.Token))
		}
		return &httpapi.Client{BaseURL: n.APIURL(), Token: u.Token}
	}
	inv, aud := client("investigator"), client("auditor")

	if _, err := inv.AddUser(ctx, "mallory", "admin"); !errors.Is(err, httpapi.ErrForbidden) {
		t.Errorf("investigator AddUser: %v; want ErrForbidden", err)
	}
	if _, err := inv.Users(ctx); !errors.Is(err, httpapi.ErrForbidden) {
		t.Errorf("investigator Users: %v; want ErrForbidden", err)
	}
	if _, err := inv.Entries(ctx, "", ledger.Filter{}); !errors.Is(err, httpapi.ErrForbidden) {
		t.Errorf("investigator Entries: %v; want ErrForbidden", err)
	}
	es, err := aud.Entries(ctx, "annual audit", ledger.Filter{Types: []ledger.Type{ledger.TypeUser, ledger.TypeLedgerRead}})
	if err != nil {
		t.Fatalf("auditor Entries: %v", err)
	}
	// Two user entries, then the read itself.
	if len(es) != 3 || es[0].Type != ledger.TypeUser || es[2].Type != ledger.TypeLedgerRead || es[2].Body.Actor != "user:auditor1" {
		t.Errorf("auditor Entries = %d entries %+v; want 2 user entries and the logged read", len(es), es)
	}
	p, err := aud.Entry(ctx, "check", es[0].Index)
	if err != nil {
		t.Fatalf("auditor Entry: %v", err)
	}
	if p.Entry.Index != es[0].Index || len(p.Leaf) == 0 || p.Size <= es[0].Index {
		t.Errorf("Entry = %+v; want entry %d with its proof", p, es[0].Index)
	}
	if _, err := aud.Entry(ctx, "", 1<<40); !errors.Is(err, httpapi.ErrNotFound) {
		t.Errorf("Entry(far) = %v; want ErrNotFound", err)
	}

	// Removing a user revokes its token at once; the list holds no hash.
	if err := n.admin.RemoveUser(ctx, "investigator1"); err != nil {
		t.Fatalf("RemoveUser: %v", err)
	}
	if _, err := inv.Card(ctx); !errors.Is(err, httpapi.ErrUnauthorized) {
		t.Errorf("removed user's call: %v; want ErrUnauthorized", err)
	}
	us, err := n.admin.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(us); len(us) != 2 || strings.Contains(string(b), "sha256") {
		t.Errorf("Users = %s; want admin and auditor1 without hashes", b)
	}
	if err := n.admin.RemoveUser(ctx, "admin"); !errors.Is(err, httpapi.ErrConflict) {
		t.Errorf("removing the last admin: %v; want ErrConflict", err)
	}
	if _, err := n.admin.AddUser(ctx, "auditor1", "auditor"); !errors.Is(err, httpapi.ErrConflict) {
		t.Errorf("AddUser of an existing name: %v; want ErrConflict", err)
	}
	if _, err := n.admin.AddUser(ctx, "bob", "wizard"); !errors.Is(err, httpapi.ErrBadRequest) {
		t.Errorf("AddUser with an unknown role: %v; want ErrBadRequest", err)
	}
}

func TestFailedLoginsRateLimited(t *testing.T) {
	noLeaks(t)
	n := startNode(t, "GB")
	ctx := context.Background()
	bad := &httpapi.Client{BaseURL: n.APIURL(), Token: "xbt_guess"}
	for i := range httpapi.DefaultMaxFailures {
		if _, err := bad.Card(ctx); !errors.Is(err, httpapi.ErrUnauthorized) {
			t.Fatalf("attempt %d: %v; want ErrUnauthorized", i, err)
		}
	}
	if _, err := bad.Card(ctx); !errors.Is(err, httpapi.ErrTooMany) {
		t.Errorf("attempt after %d failures: %v; want ErrTooMany", httpapi.DefaultMaxFailures, err)
	}
}

func TestSecretReadableByOthersStopsNode(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	if _, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range SecretFiles {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", name, err, fi.Mode())
		}
	}
	path := filepath.Join(dir, AgencyKeyFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Config{Dir: dir})
	if !errors.Is(err, ErrSecretMode) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("Open with a 0644 key = %v; want ErrSecretMode naming %s and the chmod", err, path)
	}
}

func TestPolicyApply(t *testing.T) {
	noLeaks(t)
	n := startNode(t, "GB")
	ctx := context.Background()
	files := func(limits string) httpapi.PolicyFiles {
		p, err := os.ReadFile("../examples/policy/policy.cedar")
		if err != nil {
			t.Fatal(err)
		}
		l, err := os.ReadFile("../examples/policy/limits.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if limits != "" {
			l = []byte(limits)
		}
		return httpapi.PolicyFiles{PolicyName: "policy.cedar", Policy: string(p), LimitsName: "limits.yaml", Limits: string(l)}
	}
	before := n.Policy().Version()
	v, err := n.admin.ApplyPolicy(ctx, files(""))
	if err != nil {
		t.Fatalf("ApplyPolicy: %v", err)
	}
	if v == before || n.Policy().Version() != v || n.Audit().Status().Policy != v {
		t.Errorf("after ApplyPolicy: version %s, node %s, ledger %s; want all %s (not %s)",
			v, n.Policy().Version(), n.Audit().Status().Policy, v, before)
	}
	_, err = n.admin.ApplyPolicy(ctx, files("version: 1\nbogus: [\n"))
	if !errors.Is(err, httpapi.ErrBadRequest) || !strings.Contains(err.Error(), "limits.yaml:") {
		t.Errorf("ApplyPolicy(bad) = %v; want a 400 naming limits.yaml:LINE", err)
	}
	if got, _ := n.admin.PolicyVersion(ctx); got != v {
		t.Errorf("version after a bad apply = %s; want %s kept", got, v)
	}
	// The policy entry is in the ledger, and survives a restart.
	es, err := n.Audit().Entries(ctx, ledger.Filter{Types: []ledger.Type{ledger.TypePolicy}})
	if err != nil || len(es) != 1 || es[0].PolicyVersion != v {
		t.Errorf("policy entries = %+v, %v; want one with version %s", es, err, v)
	}
}

func TestPolicyInForceAfterRestart(t *testing.T) {
	noLeaks(t)
	dir := filepath.Join(t.TempDir(), "gb")
	if _, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"}); err != nil {
		t.Fatal(err)
	}
	p, _ := os.ReadFile("../examples/policy/policy.cedar")
	l, _ := os.ReadFile("../examples/policy/limits.yaml")
	files := policy.Files{PolicyName: "policy.cedar", Policy: p, LimitsName: "limits.yaml", Limits: l}
	ctx := context.Background()
	n, err := Open(ctx, Config{Dir: dir, WatchInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leader", func() bool { return n.Audit().Status().State == "Leader" })
	v, err := n.policy.ApplyPolicy(ctx, "test", files, n.users.policyManagers)
	if cerr := n.Close(); err != nil || cerr != nil {
		t.Fatalf("ApplyPolicy: %v; Close: %v", err, cerr)
	}
	n2 := openNode(t, dir)
	waitFor(t, "policy in force after restart", func() bool { return n2.Policy().Version() == v })
}

func TestPartners(t *testing.T) {
	noLeaks(t)
	gb, fr := startNode(t, "GB"), startNode(t, "FR")
	ctx := context.Background()

	cardOf := func(n *testNode) httpapi.Card {
		c, err := n.admin.Card(ctx)
		if err != nil {
			t.Fatalf("Card: %v", err)
		}
		return c
	}
	gbCard, frCard := cardOf(gb), cardOf(fr)

	// A wrong fingerprint and a bad signature are refused.
	if _, err := fr.admin.AddPartner(ctx, gbCard.Card, frCard.Fingerprint); !errors.Is(err, httpapi.ErrBadRequest) ||
		!strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("AddPartner with the wrong fingerprint: %v; want refused for the fingerprint", err)
	}
	forged := forgeName(t, gbCard.Card)
	if _, err := fr.admin.AddPartner(ctx, forged, gbCard.Fingerprint); !errors.Is(err, httpapi.ErrBadRequest) ||
		!strings.Contains(err.Error(), "signature") {
		t.Errorf("AddPartner of an altered card: %v; want refused for the signature", err)
	}
	if ps, _ := fr.admin.Partners(ctx); len(ps) != 0 {
		t.Errorf("partners after refusals = %+v; want none", ps)
	}

	// Both pin each other by card and fingerprint, and connect.
	if _, err := fr.admin.AddPartner(ctx, gbCard.Card, gbCard.Fingerprint); err != nil {
		t.Fatalf("FR pins GB: %v", err)
	}
	if _, err := gb.admin.AddPartner(ctx, frCard.Card, frCard.Fingerprint); err != nil {
		t.Fatalf("GB pins FR: %v", err)
	}
	got := make(chan exchange.Peer, 1)
	gb.Host().Handle("/xborder/test/1.0.0", func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		got <- from
		io.Copy(io.Discard, st)
	})
	st, err := fr.Host().Open(ctx, exchange.PeerID(gb.PeerID().String()), "/xborder/test/1.0.0")
	if err != nil {
		t.Fatalf("FR opens a stream to GB: %v", err)
	}
	st.Close()
	if from := <-got; from.Agency != "FR" || from.ID != exchange.PeerID(fr.PeerID().String()) {
		t.Errorf("GB saw %+v; want FR's replica", from)
	}
	waitFor(t, "GB counts FR as connected", func() bool {
		ps := gb.ConnectedPartners()
		return len(ps) == 1 && ps[0] == "FR"
	})
	ps, err := gb.admin.Partners(ctx)
	if err != nil || len(ps) != 1 || ps[0].Agency != "FR" || ps[0].Fingerprint != frCard.Fingerprint {
		t.Errorf("GB Partners = %+v, %v; want FR", ps, err)
	}

	// An unpinned peer is refused at GB's gater.
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	gbID := gb.PeerID()
	stranger, err := host.New(ctx, host.Config{Key: k, Allowed: map[peer.ID]string{gbID: "GB"}})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	var addrs []string
	for _, a := range gb.Host().Addrs() {
		addrs = append(addrs, a.String())
	}
	if err := stranger.SetAddrs(gbID, addrs); err != nil {
		t.Fatal(err)
	}
	refused := gb.Host().Refused()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if _, err := stranger.Open(sctx, exchange.PeerID(gbID.String()), "/xborder/test/1.0.0"); err == nil {
		t.Errorf("an unpinned peer opened a stream to GB")
	}
	cancel()
	if gb.Host().Refused() <= refused {
		t.Errorf("GB's gater refused %d connections, as before; want the stranger refused", gb.Host().Refused())
	}

	// A newer card of the same agency replaces the pin; removal closes the
	// connection and is an audit entry.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond))) // next second: a newer sequence
	fr.cards.mu.Lock()
	fr.cards.own = nil
	fr.cards.mu.Unlock()
	frCard2 := cardOf(fr)
	p, err := gb.admin.AddPartner(ctx, frCard2.Card, "")
	if err != nil || !p.Replaced {
		t.Errorf("GB pins FR's newer card: %+v, %v; want replaced", p, err)
	}
	if _, err := gb.admin.AddPartner(ctx, frCard.Card, ""); !errors.Is(err, httpapi.ErrConflict) {
		t.Errorf("GB pins FR's older card again: %v; want ErrConflict", err)
	}
	if err := gb.admin.RemovePartner(ctx, "FR"); err != nil {
		t.Fatalf("RemovePartner: %v", err)
	}
	waitFor(t, "FR disconnected from GB", func() bool { return len(gb.ConnectedPartners()) == 0 })
	es, err := gb.Audit().Entries(ctx, ledger.Filter{Types: []ledger.Type{ledger.TypePartner}})
	if err != nil || len(es) != 3 || es[2].Partner != "FR" || es[2].Body.Purpose != "remove partner" {
		t.Errorf("partner entries = %+v, %v; want pin, replace, remove", es, err)
	}
	if err := gb.admin.RemovePartner(ctx, "FR"); !errors.Is(err, httpapi.ErrNotFound) {
		t.Errorf("RemovePartner again: %v; want ErrNotFound", err)
	}
}

// forgeName changes the agency name of a card's text form, keeping its
// signature.
func forgeName(t *testing.T, text string) string {
	t.Helper()
	c, err := card.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(text, `"`+c.Name+`"`, `"Forged Agency"`, 1)
	if forged == text {
		t.Fatal("name not found in card text")
	}
	return forged
}

func TestNoQuorumAnswers503(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	res, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"})
	if err != nil {
		t.Fatal(err)
	}
	// A replica waiting to be joined has no leader: it must not serve.
	cfgPath := filepath.Join(dir, ConfigFile)
	b, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(b), "bootstrap: true", "bootstrap: false", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	code, body := get(t, n.APIURL()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "audit group has no quorum") {
		t.Errorf("GET /readyz = %d %s; want 503 saying the audit group has no quorum", code, body)
	}
	tok, _ := ReadToken(res.AdminTokenFile)
	admin := &httpapi.Client{BaseURL: n.APIURL(), Token: tok}
	_, err = admin.AddUser(context.Background(), "ann", "auditor")
	var apiErr *httpapi.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || !strings.Contains(apiErr.Message, "no quorum") {
		t.Errorf("AddUser without quorum = %v; want 503 naming the missing quorum", err)
	}
}

func TestPruneAPI(t *testing.T) {
	noLeaks(t)
	n := startNode(t, "GB")
	ctx := context.Background()
	// Inside the retention period: refused, nothing pruned.
	_, err := n.admin.Prune(ctx, time.Now())
	if !errors.Is(err, httpapi.ErrBadRequest) || !strings.Contains(err.Error(), "retention") {
		t.Errorf("Prune(now) = %v; want a 400 about the retention period", err)
	}
	// Before any entry: allowed, an entry records it.
	r, err := n.admin.Prune(ctx, time.Now().Add(-10*365*24*time.Hour))
	if err != nil {
		t.Fatalf("Prune(ten years ago): %v", err)
	}
	es, err := n.Audit().Entries(ctx, ledger.Filter{Types: []ledger.Type{ledger.TypePrune}})
	if err != nil || len(es) != 1 || es[0].Index != r.Index || es[0].Body.Actor != "user:admin" {
		t.Errorf("prune entries = %+v, %v; want one at %d by user:admin", es, err, r.Index)
	}
}

func TestAPIOverTLSOffLoopback(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	res, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB", Listen: ListenConfig{API: "0.0.0.0:0"}})
	if err != nil {
		t.Fatal(err)
	}
	n := openNode(t, dir)
	if !strings.HasPrefix(n.APIURL(), "https://127.0.0.1:") {
		t.Fatalf("APIURL = %s; want https on a local address", n.APIURL())
	}
	tok, _ := ReadToken(res.AdminTokenFile)
	ca, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	hc, err := httpapi.AgencyHTTPClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	c := &httpapi.Client{BaseURL: n.APIURL(), Token: tok, HTTP: hc}
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("Status over TLS with the agency CA: %v", err)
	}
	// A client that does not trust the agency CA, or speaks plain HTTP,
	// gets nothing.
	other := t.TempDir()
	if _, err := Init(InitConfig{Dir: other, Agency: "GB", Name: "Agency GB"}); err != nil {
		t.Fatal(err)
	}
	otherCA, _ := os.ReadFile(filepath.Join(other, CACertFile))
	ohc, _ := httpapi.AgencyHTTPClient(otherCA)
	defer ohc.CloseIdleConnections()
	for name, cl := range map[string]*httpapi.Client{
		"another agency's CA": {BaseURL: n.APIURL(), Token: tok, HTTP: ohc},
		"plain HTTP":          {BaseURL: "http://" + strings.TrimPrefix(n.APIURL(), "https://"), Token: tok},
	} {
		if _, err := cl.Status(context.Background()); err == nil {
			t.Errorf("Status with %s succeeded", name)
		}
	}
}

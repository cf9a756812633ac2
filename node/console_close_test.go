package node

import (
	"context"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/xborder/xborder/exchange"
)

// TestConsoleClosesWithNode checks that closing a replica ends the
// queries its console runs in the background, before its host and
// ledgers close: GB's investigator asks TH on GB's console while TH
// answers nothing, GB's replica closes; when Close returns no console
// query is left running, and TH's part ended cancelled by the console,
// not because the host had closed under it.
func TestConsoleClosesWithNode(t *testing.T) {
	if testing.Short() {
		t.Skip("two agencies")
	}
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 1, logs)
	gb.pin(th)
	th.pin(gb)
	// TH takes GB's streams and answers none of them until it closes.
	silent := func(ctx context.Context, _ exchange.Peer, _ exchange.Stream) { <-ctx.Done() }
	for _, p := range []string{exchange.ProtoMatch, exchange.ProtoSync} {
		th.leader().host.Handle(p, silent)
	}
	q := gb.leader()
	tok, err := q.users.AddUser(ctx, "user:admin", "ivan", "investigator")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, q.APIURL())
	if resp, body := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {b.csrf("/ui/signin")}, "token": {tok.Token}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in = %d\n%s", resp.StatusCode, body)
	}
	form := url.Values{"csrf": {b.csrf("/ui/query")}, "kind": {"phone"}, "region": {"GB"}, "case": {"OP-CLOSE"},
		"basis": {"Art. 10"}, "offence": {"thb"}, "purpose": {"p"}, "partners": {"TH"}, "values": {"07700 900101"}}
	resp, body := b.do(http.MethodPost, "/ui/query", form)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.Path, "/ui/query/run/") || !strings.Contains(body, `http-equiv="refresh"`) {
		t.Fatalf("console query = %d at %s; want its progress page while TH is silent:\n%s", resp.StatusCode, resp.Request.URL.Path, body)
	}
	if !consoleRunning() {
		t.Fatal("no console query runs in the background while TH is silent")
	}
	gb.stop(0)
	if consoleRunning() {
		t.Error("a console query still runs after GB's replica closed")
	}
	// The console ended the query (its context) before the host closed:
	// TH's part ended, cancelled, not for want of a host.
	var part string
	for _, l := range strings.Split(string(logs.Bytes()), "\n") {
		if strings.Contains(l, `msg="query part ended"`) && strings.Contains(l, "partner=TH") {
			part = l
		}
	}
	// (Cancelled while dialling it reads "context canceled", while
	// reading "stream reset (local)"; after the host closed, "host
	// closed" or "swarm closed".)
	if part == "" || strings.Contains(part, "host closed") || strings.Contains(part, "swarm closed") {
		t.Errorf("TH's part of the console query ended with %q; want it cancelled by the console before the host closed", part)
	}
}

// consoleRunning reports whether a console query's goroutine runs.
func consoleRunning() bool {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Contains(string(buf), "internal/console.(*runs).start")
}

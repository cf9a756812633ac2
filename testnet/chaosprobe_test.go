package testnet

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// TestProbeAsksAnotherReplica: a querier whose last replica is down (run
// 31: DE's r3 never came back) still probes, through its other replicas.
// Before, every attempt asked the last replica and the probe failed after
// probeWait for that alone.
func TestProbeAsksAnotherReplica(t *testing.T) {
	asked := map[string]int{}
	serve := func(id string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked[id]++
			if r.Method != http.MethodPost || r.URL.Path != "/v1/queries" {
				http.NotFound(w, r)
				return
			}
			json.NewEncoder(w).Encode(httpapi.QueryResult{ID: "q-1", Status: "done", Kind: stewardKind,
				Partners: []httpapi.PartnerResult{{Agency: "GB", Outcome: httpapi.OutcomeNoHits}}})
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	tok := filepath.Join(t.TempDir(), "investigator.token")
	if err := os.WriteFile(tok, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	de := &AgencyNode{Agency: Agency{Code: "DE"}, Tokens: map[string]string{"investigator": tok},
		Replicas: []*Replica{{ID: "r1", API: serve("r1")}, {ID: "r2", API: serve("r2")}, {ID: "r3", API: down}}}
	gb := &AgencyNode{Agency: Agency{Code: "GB"}}
	w := &workload{net: &Net{Agencies: []*AgencyNode{gb, de}}, hist: &history{start: time.Now()},
		removed: map[string][]string{"GB": {"removed@example.org"}}, held: map[string][]string{"GB": {"held@example.org"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*probeWait)
	defer cancel()
	var p *probe
	for _, x := range w.probeRemovals(ctx) {
		if x.querier == "DE" && x.owner == "GB" {
			p = x
		}
	}
	if p == nil || len(p.ops) == 0 {
		t.Fatalf("no probe of GB by DE: %+v", p)
	}
	last := p.ops[len(p.ops)-1]
	if !plain(last) || len(p.ops) != 2 || last.Replica != "r2" {
		t.Errorf("%d attempts, the last through %s: %s %s; want the second, through r2, answered", len(p.ops), last.Replica, last.Outcome, last.Err)
	}
	if asked["r2"] != 1 {
		t.Errorf("r2 asked %d times; want once", asked["r2"])
	}
}

package node

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/policy"
)

// fakeSync answers every sync: kind_not_allowed for btc, unavailable for
// the rest; it counts the requests per kind.
type fakeSync struct {
	mu    sync.Mutex
	asked map[string]int
}

func (f *fakeSync) Sync(ctx context.Context, o exchange.Opener, peer exchange.PeerID, q exchange.SyncQuery) (*exchange.Synced, error) {
	f.mu.Lock()
	f.asked[q.Kind]++
	f.mu.Unlock()
	if q.Kind == "btc" {
		return nil, &exchange.DeniedError{Agency: q.Owner, Reason: exchange.ReasonKindNotAllowed}
	}
	return nil, exchange.ErrUnavailable
}

func (f *fakeSync) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[kind]
}

type fixedPins map[string]*card.Card

func (p fixedPins) Pins() map[string]*card.Card { return p }

type fixedPolicy struct{ s *policy.Set }

func (p fixedPolicy) Policy() *policy.Set { return p.s }

// TestSyncLoopPollsQuietly: only the audit leader polls; it polls the
// kinds the policy exchanges with the partner (TH's card lists phone, btc
// and address; the example limits exchange phone, email, btc and eth with
// TH, not address), and a kind the owner refused waits out its backoff.
func TestSyncLoopPollsQuietly(t *testing.T) {
	noLeaks(t)
	pf, err := os.ReadFile("../examples/policy/policy.cedar")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := os.ReadFile("../examples/policy/limits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse(policy.Files{Policy: pf, Limits: lf})
	if err != nil {
		t.Fatal(err)
	}
	th := &card.Card{Agency: "TH", Replicas: []card.Replica{{PeerID: "p1"}, {PeerID: "p2"}}}
	for _, k := range []string{"phone", "btc", "address"} {
		th.EpochKeys = append(th.EpochKeys, card.EpochKey{Epoch: 1, Kind: k, Reach: reachOpen})
	}
	client := &fakeSync{asked: map[string]int{}}
	var leading atomic.Bool
	ps, err := openPartnerSets(partnerSetsConfig{Dir: filepath.Join(t.TempDir(), "partners"), Key: make([]byte, 32),
		Client: client, Pins: fixedPins{"TH": th}, Policy: fixedPolicy{pol}, Leader: leading.Load,
		Interval: time.Second, Metrics: newSyncMetrics(nil)})
	if err != nil {
		t.Fatal(err)
	}
	ps.Start()
	t.Cleanup(func() { ps.Close() })

	poll(t, "passes skipped while not leading", time.Minute, func() bool { return ps.skipped.Load() >= 2 })
	for _, k := range []string{"phone", "btc", "address"} {
		if n := client.count(k); n != 0 {
			t.Errorf("a replica that does not lead asked for %s %d times", k, n)
		}
	}
	leading.Store(true)
	poll(t, "three passes as leader", time.Minute, func() bool { return ps.passes.Load() >= 3 })
	if n := client.count("address"); n != 0 {
		t.Errorf("asked for address %d times; the policy does not exchange it with TH", n)
	}
	if n := client.count("phone"); n < 2*3 {
		t.Errorf("asked for phone %d times in 3 passes; want both replicas, each pass", n)
	}
	// btc: refused at the first pass (one request: a policy refusal ends
	// the sync), then the backoff (1s, 2s, ...) skips passes.
	if n, p := client.count("btc"), int(ps.passes.Load()); n == 0 || n >= p {
		t.Errorf("asked for btc %d times in %d passes; want fewer than one a pass", n, p)
	}
}

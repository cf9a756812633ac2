package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/node/host"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func threeReplicas() *card.Card {
	return &card.Card{Agency: "DE", Replicas: []card.Replica{{PeerID: "a"}, {PeerID: "b"}, {PeerID: "c"}}}
}

var (
	errNoQuorum    = fmt.Errorf("match DE: %w", exchange.ErrUnavailable)
	errNoDial      = fmt.Errorf("open stream: %w: %w", exchange.ErrUnavailable, host.ErrUnreachable)
	errNotVerified = fmt.Errorf("match DE: %w", exchange.ErrVerify)
	errSkewed      = fmt.Errorf("match DE: %w", &exchange.DeniedError{Agency: "DE", Reason: exchange.ReasonClockSkew, Time: time.Unix(1, 0)})
)

func TestReplicaOrder(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	o := newReplicaOrder(clk.now)
	c := threeReplicas()
	want := func(what string, peers ...exchange.PeerID) {
		t.Helper()
		if got := o.order(c.Replicas); !slices.Equal(got, peers) {
			t.Errorf("%s: order = %v; want %v", what, got, peers)
		}
	}
	want("no memory: the card's order", "a", "b", "c")

	o.report("a", errNoQuorum)
	want("a unavailable", "b", "c", "a")
	o.report("b", errNoDial)
	want("a and b unavailable: last, in the card's order", "c", "a", "b")
	o.report("c", errNotVerified)
	want("an answer that does not verify changes nothing", "c", "a", "b")

	clk.add(replicaBackoff)
	want("the first back-off over", "a", "b", "c")

	// A second "unavailable" in a row doubles the back-off.
	o.report("a", errNoQuorum)
	clk.add(replicaBackoff)
	want("a's second back-off runs", "b", "c", "a")
	clk.add(replicaBackoff)
	want("a's second back-off over", "a", "b", "c")

	// An answer, a result or a denial, forgets it: the next back-off is the first.
	o.report("a", &exchange.DeniedError{Agency: "DE", Reason: exchange.ReasonReplay})
	o.report("a", errNoQuorum)
	clk.add(replicaBackoff)
	want("a denial reset a's back-off", "a", "b", "c")

	// The back-off is bounded.
	for range 20 {
		o.report("b", errNoQuorum)
	}
	clk.add(replicaBackoffMax)
	want("b's back-off bounded", "a", "b", "c")
	o.report("b", nil)

	// The memory is bounded.
	for i := range maxDemoted + 10 {
		o.report(exchange.PeerID(fmt.Sprint("x", i)), errNoQuorum)
	}
	if n := len(o.down); n > maxDemoted {
		t.Errorf("%d replicas remembered; want at most %d", n, maxDemoted)
	}
}

func TestReplicaOrderAsk(t *testing.T) {
	ctx := context.Background()
	c := threeReplicas()
	denied := func(err error) bool { var d *exchange.DeniedError; return errors.As(err, &d) }
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	for _, tt := range []struct {
		name    string
		answers map[exchange.PeerID]error // missing: nil
		passes  int
		asked   []exchange.PeerID
		ok      func(error) bool
	}{
		{"the first answers", nil, replicaPasses, []exchange.PeerID{"a"}, is(nil)},
		{"the first without quorum", map[exchange.PeerID]error{"a": errNoQuorum}, replicaPasses,
			[]exchange.PeerID{"a", "b"}, is(nil)},
		{"a denial ends the search", map[exchange.PeerID]error{"a": &exchange.DeniedError{Reason: exchange.ReasonReplay}},
			replicaPasses, []exchange.PeerID{"a"}, denied},
		{"an answer that does not verify ends the search", map[exchange.PeerID]error{"a": errNotVerified},
			replicaPasses, []exchange.PeerID{"a"}, is(exchange.ErrVerify)},
		{"none reachable: one round", map[exchange.PeerID]error{"a": errNoDial, "b": errNoDial, "c": errNoDial},
			replicaPasses, []exchange.PeerID{"a", "b", "c"}, is(host.ErrUnreachable)},
		{"every one without quorum: rounds with waits", map[exchange.PeerID]error{"a": errNoQuorum, "b": errNoDial, "c": errNoQuorum},
			2, []exchange.PeerID{"a", "b", "c", "a", "b", "c"}, is(exchange.ErrUnavailable)},
		// A replica's clock_skew is its own clock's: the next one is asked
		// (defect 8's note, docs/RELIABILITY.md).
		{"a replica's clock_skew: the next one answers", map[exchange.PeerID]error{"a": errSkewed},
			replicaPasses, []exchange.PeerID{"a", "b"}, is(nil)},
		{"clock_skew from every replica: the denial", map[exchange.PeerID]error{"a": errSkewed, "b": errSkewed, "c": errSkewed},
			replicaPasses, []exchange.PeerID{"a", "b", "c"}, denied},
		{"clock_skew, then a denial: that denial", map[exchange.PeerID]error{"a": errSkewed, "b": &exchange.DeniedError{Agency: "DE", Reason: exchange.ReasonReplay, Time: time.Unix(1, 0)}},
			replicaPasses, []exchange.PeerID{"a", "b"}, func(err error) bool {
				var d *exchange.DeniedError
				return errors.As(err, &d) && d.Reason == exchange.ReasonReplay
			}},
		{"clock_skew and no quorum: rounds without the skewed one", map[exchange.PeerID]error{"a": errSkewed, "b": errNoQuorum, "c": errNoQuorum},
			2, []exchange.PeerID{"a", "b", "c", "b", "c"}, is(exchange.ErrUnavailable)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newReplicaOrder(nil)
			var asked []exchange.PeerID
			err := o.ask(ctx, c, tt.passes, func(p exchange.PeerID) error {
				asked = append(asked, p)
				return tt.answers[p]
			})
			if !slices.Equal(asked, tt.asked) {
				t.Errorf("asked %v; want %v", asked, tt.asked)
			}
			if !tt.ok(err) {
				t.Errorf("ask = %v; not the answer wanted", err)
			}
		})
	}

	// The wait between rounds ends with ctx.
	o := newReplicaOrder(nil)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	rounds := 0
	err := o.ask(cctx, c, replicaPasses, func(p exchange.PeerID) error {
		if p == "a" {
			rounds++
		}
		return errNoQuorum
	})
	if took := time.Since(start); !errors.Is(err, exchange.ErrUnavailable) || rounds != 1 || took > 2*time.Second {
		t.Errorf("ask under a 100ms deadline = %v after %v and %d rounds; want unavailable after one round", err, took, rounds)
	}
	if err := o.ask(ctx, &card.Card{Agency: "DE"}, 1, func(exchange.PeerID) error { return nil }); !errors.Is(err, exchange.ErrUnavailable) {
		t.Errorf("ask of a card without replicas = %v; want unavailable", err)
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/node/host"
)

// How this node orders and retries a partner's replicas (docs/network.md,
// "Which replica is asked").
const (
	// replicaBackoff is how long a replica that answered "unavailable"
	// (or could not be reached) is asked last; it doubles with every
	// further such answer, up to replicaBackoffMax, and an answer (a
	// result or a denial) clears it.
	replicaBackoff    = 10 * time.Second
	replicaBackoffMax = 5 * time.Minute
	// replicaPasses bounds the rounds over a partner's replicas when every
	// one answered "unavailable" and at least one of them was reached (an
	// election, or a group that lost its quorum): the first wait is
	// replicaPassWait and each next one twice the last, 3.5 s in all, about
	// a Raft election with the default timeouts. Replicas that cannot be
	// reached at all get one round.
	replicaPasses   = 4
	replicaPassWait = 500 * time.Millisecond
	// maxDemoted bounds the replicas remembered; past it the oldest
	// memory is dropped.
	maxDemoted = 4096
)

// replicaOrder is the order in which this node asks a partner's replicas,
// shared by the querier (match) and the partner sets (sync): the card's
// order, except that replicas that recently answered "unavailable" go
// last, in the card's order among themselves. It holds only that memory,
// by peer ID, and starts no goroutine.
type replicaOrder struct {
	now func() time.Time

	mu   sync.Mutex
	down map[exchange.PeerID]demotion
}

// demotion is how long a replica is asked last, and how many
// "unavailable" answers in a row put it there.
type demotion struct {
	until   time.Time
	strikes int
}

// newReplicaOrder returns an order with no memory, on the clock now (nil:
// time.Now).
func newReplicaOrder(now func() time.Time) *replicaOrder {
	if now == nil {
		now = time.Now
	}
	return &replicaOrder{now: now, down: map[exchange.PeerID]demotion{}}
}

// order returns the peers of rs in the order to ask them.
func (o *replicaOrder) order(rs []card.Replica) []exchange.PeerID {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	first := make([]exchange.PeerID, 0, len(rs))
	var last []exchange.PeerID
	for _, r := range rs {
		p := exchange.PeerID(r.PeerID)
		if d, ok := o.down[p]; ok && now.Before(d.until) {
			last = append(last, p)
			continue
		}
		first = append(first, p)
	}
	return append(first, last...)
}

// report notes how peer answered: an "unavailable" (or no answer at all)
// asks it last for a while, longer each time; an answer, a result or a
// denial, forgets that. Other failures (an answer that does not verify)
// change nothing.
func (o *replicaOrder) report(peer exchange.PeerID, err error) {
	var denied *exchange.DeniedError
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil, errors.As(err, &denied):
		delete(o.down, peer)
	case errors.Is(err, exchange.ErrUnavailable):
		d := o.down[peer]
		d.strikes++
		wait := replicaBackoffMax
		if d.strikes <= 6 {
			wait = min(replicaBackoff<<(d.strikes-1), replicaBackoffMax)
		}
		d.until = o.now().Add(wait)
		if _, ok := o.down[peer]; !ok && len(o.down) >= maxDemoted {
			o.forgetOldest()
		}
		o.down[peer] = d
	}
}

// clockSkewed says whether err is a partner replica's clock_skew denial:
// the request's time is off that replica's clock, which may be the
// replica's own clock's fault, so another replica may answer.
func clockSkewed(err error) bool {
	var d *exchange.DeniedError
	return errors.As(err, &d) && d.Reason == exchange.ReasonClockSkew && !d.Time.IsZero()
}

// forgetOldest drops the demotion that ends first. The caller holds o.mu.
func (o *replicaOrder) forgetOldest() {
	var oldest exchange.PeerID
	var at time.Time
	for p, d := range o.down {
		if at.IsZero() || d.until.Before(at) {
			oldest, at = p, d.until
		}
	}
	delete(o.down, oldest)
}

// ask calls try with the replicas of c in order until one answers: try
// returns nil, or an error that is not exchange.ErrUnavailable (a denial,
// an answer that does not verify), which ask returns. A clock_skew
// denial is the replica's (its clock may be off): the next replica is
// asked, the skewed one not again, and the denial is returned only when
// every replica asked denied so. When every replica
// answered "unavailable" and at least one was reached, it waits and asks
// them all again, up to passes rounds (at most replicaPasses) and while
// ctx lasts; then it returns the last round's errors, joined.
func (o *replicaOrder) ask(ctx context.Context, c *card.Card, passes int, try func(exchange.PeerID) error) error {
	if len(c.Replicas) == 0 {
		return fmt.Errorf("the card of %s lists no replica: %w", c.Agency, exchange.ErrUnavailable)
	}
	wait := replicaPassWait
	passes = min(max(passes, 1), replicaPasses)
	// A replica that denied clock_skew is not asked again: the denial is
	// on its ledger, and it is the answer only if no replica gives another.
	var skewed map[exchange.PeerID]bool
	var skew error
	for pass := 1; ; pass++ {
		var errs []error
		reached := false
		for _, p := range o.order(c.Replicas) {
			if skewed[p] {
				continue
			}
			err := try(p)
			o.report(p, err)
			if clockSkewed(err) && ctx.Err() == nil {
				if skewed == nil {
					skewed = map[exchange.PeerID]bool{}
				}
				skewed[p], skew = true, err
				continue
			}
			if err == nil || !errors.Is(err, exchange.ErrUnavailable) || ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
			reached = reached || !errors.Is(err, host.ErrUnreachable)
		}
		if len(errs) == 0 && skew != nil {
			return skew // every replica asked denied clock_skew: the querier's clock, most likely
		}
		if pass >= passes || !reached || len(errs) == 0 {
			return errors.Join(errs...)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(errs...)
		case <-t.C:
		}
		wait *= 2
	}
}

package node

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
)

// refusal is an owner's refusal to sync a kind to this agency, cached so
// that the background loop does not ask again before until.
type refusal struct {
	reason  exchange.Reason
	until   time.Time
	backoff time.Duration
}

// MaxSyncBackoff is the longest the background loop waits before it asks
// again for a kind the owner refused: the wait starts at the sync interval
// and doubles with each refusal.
const MaxSyncBackoff = time.Hour

// syncLoop polls, on the audit leader, every pinned partner's kinds that
// the agreement with it covers (policy), every sync interval, until Close;
// a kind the owner refused is asked again only after a backoff.
func (ps *partnerSets) syncLoop() {
	defer ps.wg.Done()
	t := time.NewTicker(max(ps.interval, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ps.stop:
			return
		case <-t.C:
		}
		if ps.leader != nil && !ps.leader() {
			ps.skipped.Add(1)
			continue
		}
		for partner, c := range ps.pins.Pins() {
			for _, kind := range ps.pollKinds(partner, c) {
				for _, reach := range ps.pollReaches(partner, kind) {
					if ps.refusedNow(partner, kind, reach) {
						continue
					}
					ps.poll(partner, kind, reach)
				}
			}
		}
		ps.passes.Add(1)
	}
}

// pollKinds returns the kinds partner's card has keys for that the policy
// in force lets this agency exchange with it.
func (ps *partnerSets) pollKinds(partner string, c *card.Card) []string {
	var allowed []string
	if ps.policy != nil {
		allowed = ps.policy.Policy().PartnerKinds(partner)
	}
	var out []string
	for _, k := range c.EpochKeys {
		if slices.Contains(allowed, k.Kind) && !slices.Contains(out, k.Kind) {
			out = append(out, k.Kind)
		}
	}
	return out
}

// pollReaches returns the reaches of kind to sync from partner: open, and
// the reaches this agency's safeguarding queries may ask of it by the
// policy in force (the owner refuses the others with reach_not_allowed).
func (ps *partnerSets) pollReaches(partner, kind string) []string {
	if ps.policy == nil {
		return []string{reachOpen}
	}
	if rs := ps.policy.Policy().SyncReaches(partner, kind); len(rs) > 0 {
		return rs
	}
	return []string{reachOpen}
}

// poll syncs the copy of (partner, kind, reach) once.
func (ps *partnerSets) poll(partner, kind, reach string) {
	ctx, cancel := context.WithTimeout(context.Background(), max(ps.interval, exchange.DefaultTimeout))
	defer cancel()
	ctx, stop := ps.stoppable(ctx)
	defer stop()
	pc := ps.partnerCopy(partner, kind, reach)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	err := ps.syncCopy(ctx, partner, kind, reach, pc, 1) // no rounds: the next pass asks again
	ps.noteRefusal(partner, kind, reach, err)
	if err != nil {
		ps.log.Info("background sync", "partner", partner, "kind", kind, "reach", reach, "err", err)
	}
	if !pc.synced.IsZero() && reach == reachOpen {
		ps.met.lag.WithLabelValues(partner, kind).Set(time.Since(pc.synced).Seconds())
	}
}

// noteRefusal caches the owner's refusal in err (doubling the wait from
// the sync interval up to MaxSyncBackoff), or forgets it after a sync that
// succeeded.
func (ps *partnerSets) noteRefusal(partner, kind, reach string, err error) {
	key := partner + "/" + kindReach(kind, reach)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var d *exchange.DeniedError
	switch {
	case err == nil:
		delete(ps.refused, key)
	case errors.As(err, &d):
		r := ps.refused[key]
		if r == nil {
			r = &refusal{backoff: ps.interval / 2}
			ps.refused[key] = r
		}
		r.reason, r.backoff = d.Reason, min(2*r.backoff, MaxSyncBackoff)
		r.until = time.Now().Add(r.backoff)
	}
}

// refusedNow reports whether the owner refused (partner, kind, reach) and
// the backoff has not run out.
func (ps *partnerSets) refusedNow(partner, kind, reach string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.refused[partner+"/"+kindReach(kind, reach)]
	return r != nil && time.Now().Before(r.until)
}

// stoppable returns ctx cancelled also when Close begins.
func (ps *partnerSets) stoppable(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ps.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

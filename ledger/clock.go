package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Time comes from the leader's clock (it stamps every command) and Apply
// clamps it so that it never goes backwards: so one leader whose clock
// runs far ahead would pin entry times, day budgets and prune dates
// forward for good. The leader therefore measures the other voters'
// clocks (a forwarding ping answers with the replica's time, every
// clockEvery, and before the first write of a term), and before it stamps
// a command it checks that at least a majority of the voters (itself
// included) have a clock no more than maxClockAhead behind its own. When
// they do not, it refuses the write (ErrClockAhead), logs it and hands
// leadership to another replica; the caller's retry goes to the new
// leader. Clocks are extrapolated from their sample by the monotonic
// clock, so a jump of the leader's clock shows at its next write, not at
// the next sample. When fewer than a majority answered (a replica of an
// older version, a partition) the check cannot tell and lets the write
// through: committing it needs a majority anyway.
const (
	maxClockAhead = 5 * time.Minute
	clockEvery    = time.Second
	// clockStale is the age after which a sample no longer counts.
	clockStale = 10 * time.Second
)

// ErrClockAhead: this replica leads but its clock is more than five
// minutes ahead of a majority of the replicas' clocks, so it does not
// write; it hands leadership over and the write, retried, goes to the
// new leader. Fix the replica's clock (NTP).
var ErrClockAhead = errors.New("leader clock ahead of a majority of the replicas")

// clockSample is a voter's clock as the leader read it.
type clockSample struct {
	id   string
	them time.Time // the voter's clock, at mono, estimated at the ping's midpoint
	mono time.Time // time.Now() then (monotonic)
}

// clockView is one round of samples, with the number of voters then.
type clockView struct {
	samples []clockSample
	voters  int
	at      time.Time // monotonic
}

// clocks holds the leader's latest round.
type clocks struct {
	view     atomic.Pointer[clockView]
	mu       sync.Mutex   // serialises sampling
	transfer atomic.Int64 // time.Now().UnixNano() of the last leadership transfer asked for
}

// clockLoop samples the voters' clocks every clockEvery while this
// replica leads. It ends when the ledger closes.
func (l *Ledger) clockLoop() {
	defer l.fwdWG.Done()
	if l.cfg.Transport == nil {
		return // alone: its clock is the majority's
	}
	t := time.NewTicker(clockEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if l.isLeader() {
			l.sampleClocks()
		}
	}
}

// sampleClocks pings every other voter and keeps the clocks they answer with.
func (l *Ledger) sampleClocks() {
	l.clk.mu.Lock()
	defer l.clk.mu.Unlock()
	if v := l.clk.view.Load(); v != nil && time.Since(v.at) < clockEvery/2 {
		return // another caller has just sampled
	}
	f := l.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		v  = clockView{at: time.Now()}
	)
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if v.voters++; string(s.ID) == l.cfg.ReplicaID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), clockEvery)
			defer cancel()
			start := time.Now()
			resp, err := l.forward(ctx, string(s.Address), &fwdRequest{Op: fwdPing})
			if err != nil || resp.Replica != string(s.ID) || resp.Now == 0 {
				return
			}
			end := time.Now()
			mid := start.Add(end.Sub(start) / 2)
			mu.Lock()
			// Their clock at mid: what they answered, plus half the round trip.
			v.samples = append(v.samples, clockSample{id: string(s.ID), them: time.Unix(0, resp.Now).Add(end.Sub(mid)), mono: mid})
			mu.Unlock()
		}()
	}
	wg.Wait()
	l.clk.view.Store(&v)
}

// checkClock returns ErrClockAhead when now, this leader's clock, is more
// than maxClockAhead ahead of a majority of the voters' clocks, and then
// asks Raft to hand leadership over.
func (l *Ledger) checkClock(now time.Time) error {
	if l.cfg.Transport == nil {
		return nil
	}
	v := l.clk.view.Load()
	if v == nil || time.Since(v.at) > clockStale {
		l.sampleClocks()
		if v = l.clk.view.Load(); v == nil {
			return nil
		}
	}
	known, behind := 1, 0 // this replica's own clock is known, and not behind itself
	var lag time.Duration
	for _, s := range v.samples {
		if time.Since(s.mono) > clockStale {
			continue
		}
		known++
		theirs := s.them.Add(time.Since(s.mono))
		if d := now.Sub(theirs); d > maxClockAhead {
			behind++
			lag = max(lag, d)
		}
	}
	voters := v.voters
	q := voters/2 + 1
	if known-behind >= q || known < q {
		return nil
	}
	err := fmt.Errorf("%w: %d of %d voters' clocks are more than %v behind this replica's (up to %v): fix this replica's clock",
		ErrClockAhead, behind, voters, maxClockAhead, lag.Round(time.Second))
	last := l.clk.transfer.Load()
	if time.Since(time.Unix(0, last)) > 2*clockEvery && l.clk.transfer.CompareAndSwap(last, time.Now().UnixNano()) {
		l.log.Error("leader's clock ahead of a majority: refusing writes and handing leadership over", "err", err)
		go func() {
			if err := l.await(l.raft.LeadershipTransfer()); err != nil {
				l.log.Warn("leadership transfer", "err", err)
			}
		}()
	}
	return err
}

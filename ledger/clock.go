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
// forward for good. The leader therefore reads the other voters' clocks
// (a forwarding ping answers with the replica's time: as soon as it leads,
// then every clockEvery), and before it stamps a command it checks that a
// majority of the voters (itself included) have a clock no more than
// maxClockAhead behind its own. When they do not, it refuses the write
// (ErrClockAhead), logs it and hands leadership to another replica; the
// caller's retry goes to the new leader. Clocks are extrapolated from
// their sample by the monotonic clock, so a jump of the leader's clock
// shows at its next write, not at the next sample. Until it has read a
// majority's clocks a new leader writes only while its clock is within
// maxClockAhead of the last committed time (stamped by a leader that
// passed the check), else it waits for them (errClockUnknown, retried); a
// replica of an older version, which answers the ping without its time,
// counts as agreeing.
const (
	maxClockAhead = 5 * time.Minute
	clockEvery    = time.Second
	// clockPoll is how often the loop looks for a new term to sample at
	// once; a writer waiting for a majority's clocks looks ten times as often.
	clockPoll = 50 * time.Millisecond
	// clockPing bounds one round of pings.
	clockPing = 3 * time.Second
	// clockStale is the age after which a sample no longer counts.
	clockStale = 10 * time.Second
)

// ErrClockAhead: this replica leads but its clock is more than five
// minutes ahead of a majority of the replicas' clocks, so it does not
// write; it hands leadership over and the write, retried, goes to the
// new leader. Fix the replica's clock (NTP).
var ErrClockAhead = errors.New("leader clock ahead of a majority of the replicas")

// errClockUnknown: a new leader has not yet read a majority's clocks; the
// write is retried.
var errClockUnknown = errors.New("leader has not read a majority of the replicas' clocks yet")

// clockSample is a voter's clock as the leader read it.
type clockSample struct {
	id   string
	them time.Time // the voter's clock at mono; zero: it did not say (older version)
	mono time.Time // time.Now() then (monotonic)
}

// clockView is one round of samples.
type clockView struct {
	samples []clockSample
	at      time.Time // monotonic
}

// clocks holds the leader's samples: the latest answer of each voter.
type clocks struct {
	view     atomic.Pointer[clockView]
	pub      sync.Mutex    // serialises updates of view
	kick     chan struct{} // a writer asks clockLoop for a round now
	transfer atomic.Int64  // time.Now().UnixNano() of the last leadership transfer asked for
}

// clockLoop samples the voters' clocks while this replica leads: at once
// when it starts leading or a writer asks, then every clockEvery. It ends
// when the ledger closes.
func (l *Ledger) clockLoop() {
	defer l.fwdWG.Done()
	if l.cfg.Transport == nil {
		return // alone: its clock is the majority's
	}
	t := time.NewTicker(clockPoll)
	defer t.Stop()
	led := false
	for {
		kicked := false
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.clk.kick:
			kicked = true
		}
		if !l.isLeader() {
			led = false
			continue
		}
		if v := l.clk.view.Load(); kicked || !led || v == nil || time.Since(v.at) >= clockEvery {
			led = true
			l.sampleClocks()
		}
	}
}

// sampleClocks pings every other voter and publishes each clock as it
// answers, so that a voter that does not answer delays no one.
func (l *Ledger) sampleClocks() {
	f := l.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	l.clk.publish(nil, time.Now())
	var wg sync.WaitGroup
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter || string(s.ID) == l.cfg.ReplicaID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), clockPing)
			defer cancel()
			start := time.Now()
			resp, err := l.roundTrip(ctx, string(s.Address), &fwdRequest{Op: fwdPing}, nil)
			if err != nil || resp.Replica != string(s.ID) {
				return
			}
			end := time.Now()
			cs := clockSample{id: string(s.ID), mono: start.Add(end.Sub(start) / 2)}
			if resp.Now != 0 {
				cs.them = time.Unix(0, resp.Now) // read about halfway through the round trip
			}
			l.clk.publish(&cs, time.Time{})
		}()
	}
	wg.Wait()
}

// publish replaces s's voter's sample with s, or (s nil) marks a new round
// started at.
func (c *clocks) publish(s *clockSample, at time.Time) {
	c.pub.Lock()
	defer c.pub.Unlock()
	nv := &clockView{at: at}
	if old := c.view.Load(); old != nil {
		if at.IsZero() {
			nv.at = old.at
		}
		for _, o := range old.samples {
			if s == nil || o.id != s.id {
				nv.samples = append(nv.samples, o)
			}
		}
	}
	if s != nil {
		nv.samples = append(nv.samples, *s)
	}
	c.view.Store(nv)
}

// checkClock returns ErrClockAhead when now, this leader's clock, is more
// than maxClockAhead ahead of a majority of the voters' clocks, and then
// asks Raft to hand leadership over; errClockUnknown while it has not read
// a majority's clocks.
func (l *Ledger) checkClock(now time.Time) error {
	if l.cfg.Transport == nil {
		return nil
	}
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	voters, known, behind, lag := judgeClocks(now, servers, l.clk.view.Load())
	if known < voters/2+1 && now.Sub(time.Unix(0, l.fsm.meta().time)) <= maxClockAhead {
		// Not known yet, but no more than maxClockAhead past the last
		// committed time, which a leader stamped that passed this check:
		// writing moves time forward no further than a clock would.
		return nil
	}
	if known < voters/2+1 {
		// A new leader, a voter added since the last round, or one that
		// missed it: ask for a round now, and wait for a majority's
		// answers (not for all: a voter that is down would hold it up).
		select {
		case l.clk.kick <- struct{}{}:
		default:
		}
		for deadline := time.Now().Add(clockPing); known < voters/2+1 && time.Now().Before(deadline); {
			time.Sleep(clockPoll / 10)
			voters, known, behind, lag = judgeClocks(now, servers, l.clk.view.Load())
		}
	}
	q := voters/2 + 1
	switch {
	case known-behind >= q:
		return nil
	case known < q:
		return errClockUnknown
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

// judgeClocks counts the voters of servers, those whose clocks v knows
// (this replica's own included), and those more than maxClockAhead behind
// now, with the largest such lag.
func judgeClocks(now time.Time, servers []raft.Server, v *clockView) (voters, known, behind int, lag time.Duration) {
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	known = 1 // this replica's own clock, not behind itself
	if v == nil {
		return voters, known, 0, 0
	}
	for _, s := range v.samples {
		if time.Since(s.mono) > clockStale || !isVoter(servers, s.id) {
			continue
		}
		known++
		if s.them.IsZero() {
			continue // an older version: it does not say, so it does not object
		}
		if d := now.Sub(s.them.Add(time.Since(s.mono))); d > maxClockAhead {
			behind++
			lag = max(lag, d)
		}
	}
	return voters, known, behind, lag
}

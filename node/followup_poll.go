package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// DefaultFollowupPoll is how often the audit leader's poll loop runs: it
// polls open urgent follow-ups on every pass, standard ones every
// standardEvery passes, and erases the tags of hits past their window.
const DefaultFollowupPoll = time.Minute

const (
	// standardEvery: a standard follow-up is polled every this many passes.
	standardEvery = 5
	// maxPollsPerPass bounds the polls of one pass; the rest wait for the
	// next, most urgent deadline first.
	maxPollsPerPass = 32
	// maxPollBackoff is the longest wait after failed polls of one
	// follow-up (the wait doubles from the pass interval).
	maxPollBackoff = time.Hour
	// sendingGrace is how long a follow-up may stay "sending" before the
	// loop settles it: past the owner's freshness window, nothing sent
	// then can still be accepted.
	sendingGrace = 5 * time.Minute
	// sweepEvery is how often the loop erases expired tags of hits.
	sweepEvery = 10 * time.Minute
)

// pollTurn is when the leader polls a follow-up next, and the wait after
// the last failure.
type pollTurn struct {
	at      time.Time
	backoff time.Duration
}

// Start starts the poll loop; it runs on the audit leader only.
func (f *followupOut) Start() {
	f.wg.Add(1)
	go f.loop()
}

// Close stops the poll loop and returns when it has ended.
func (f *followupOut) Close() error {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.wg.Wait()
	return nil
}

func (f *followupOut) loop() {
	defer f.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.stop
		cancel()
	}()
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	var swept time.Time
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		if f.cfg.Leader != nil && !f.cfg.Leader() {
			continue
		}
		pctx, pcancel := context.WithTimeout(ctx, f.cfg.Interval+exchange.DefaultTimeout)
		f.pass(pctx)
		if time.Since(swept) > sweepEvery {
			if n, err := f.cfg.Hits.sweep(pctx); err != nil {
				f.cfg.Log.Warn("erase kept hits past their window", "erased", n, "err", err)
			} else {
				swept = time.Now()
				if n > 0 {
					f.cfg.Log.Info("kept hits erased past their window", "erased", n)
				}
			}
		}
		pcancel()
	}
}

// pass polls the open follow-ups that are due (most urgent deadline
// first, at most maxPollsPerPass), and commits what an earlier pass or
// Send could not: the entry of a follow-up sent but not recorded, the
// result of an answer stored but not recorded, the outcome of a follow-up
// the node stopped sending.
func (f *followupOut) pass(ctx context.Context) {
	recs, err := f.all()
	if err != nil {
		f.cfg.Log.Warn("follow-up poll pass", "err", err)
		return
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Deadline.Before(recs[j].Deadline) })
	now := f.cfg.Now()
	polls := 0
	for _, rec := range recs {
		if ctx.Err() != nil {
			return
		}
		var err error
		switch {
		case rec.Status == httpapi.FollowupSending:
			if now.Sub(rec.Created) > sendingGrace && f.due(rec.ID, now) {
				err = f.recoverSending(ctx, rec)
			}
		case rec.OutIndex == nil:
			err = f.recordOut(ctx, rec)
		case rec.Status == httpapi.FollowupAnswered && rec.ResultIndex == nil:
			err = f.recordResult(ctx, rec)
		case rec.Status == httpapi.FollowupOpen && polls < maxPollsPerPass && f.due(rec.ID, now):
			polls++
			err = f.update(ctx, rec)
		}
		f.schedule(rec, now, err)
	}
}

// due reports whether follow-up id may be polled now.
func (f *followupOut) due(id string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !now.Before(f.next[id].at)
}

// schedule sets when rec is polled next: on every pass while urgent, every
// standardEvery passes otherwise, after a doubling backoff when it failed;
// never again once settled.
func (f *followupOut) schedule(rec *sentFollowup, now time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rec.Status != httpapi.FollowupOpen && rec.Status != httpapi.FollowupSending {
		delete(f.next, rec.ID)
		return
	}
	t := f.next[rec.ID]
	switch {
	case err != nil:
		t.backoff = min(max(2*t.backoff, f.cfg.Interval), maxPollBackoff)
		t.at = now.Add(t.backoff)
		f.cfg.Log.Info("follow-up poll", "followup", rec.ID, "partner", rec.Partner, "err", err, "retry", t.backoff)
	case rec.Urgent:
		t = pollTurn{at: now.Add(f.cfg.Interval / 2)}
	default:
		t = pollTurn{at: now.Add(standardEvery*f.cfg.Interval - f.cfg.Interval/2)}
	}
	f.next[rec.ID] = t
}

// poll asks the partner's replicas in turn for rec's state; the answer,
// when there is one, is verified (exchange.Client.PollFollowup).
func (f *followupOut) poll(ctx context.Context, rec *sentFollowup) (*exchange.FollowupStatus, error) {
	c, ok := f.cfg.Pins.Pins()[rec.Partner]
	if !ok {
		return nil, fmt.Errorf("poll follow-up %s: %w", rec.Partner, ErrNotPinned)
	}
	id, req, err := rec.ids()
	if err != nil {
		return nil, err
	}
	var st *exchange.FollowupStatus
	err = f.cfg.Order.ask(ctx, c, 1, func(peer exchange.PeerID) error {
		s, err := f.cfg.Client.PollFollowup(ctx, f.cfg.Opener, peer, exchange.FollowupPoll{Owner: rec.Partner, ID: id, RequestID: req, Tags: len(rec.Hits)})
		st = s
		return err
	})
	return st, err
}

// update polls rec once and records what changed: a new deadline, or the
// answer (stored first, then its followup_result entry). A partner that
// holds no such follow-up any more settles it as failed.
func (f *followupOut) update(ctx context.Context, rec *sentFollowup) error {
	st, err := f.poll(ctx, rec)
	var denied *exchange.DeniedError
	switch {
	case errors.As(err, &denied) && denied.Reason == exchange.ReasonUnknownFollowup:
		rec.Status, rec.Reason = httpapi.FollowupFailed, "the partner holds no such follow-up (unknown_followup)"
		return f.put(ctx, rec)
	case err != nil:
		return err
	case st.Answer == nil:
		if d := st.Deadline.UTC(); !d.Equal(rec.Deadline) {
			rec.Deadline = d
			return f.put(ctx, rec)
		}
		return nil
	}
	rec.Status, rec.Signed = httpapi.FollowupAnswered, st.Signed
	if err := f.put(ctx, rec); err != nil {
		return err
	}
	f.cfg.Log.Info("follow-up answered", "followup", rec.ID, "partner", rec.Partner, "refused", st.Answer.Refused, "shared", len(st.Answer.Shared))
	return f.recordResult(ctx, rec)
}

// recordResult commits the followup_result entry of rec's stored answer:
// outcome ok (shared) or denied (refused), the handling code, the records
// shared and SHA-256 of the signed answer, as the owner's followup_answer
// entry records it.
func (f *followupOut) recordResult(ctx context.Context, rec *sentFollowup) error {
	a, err := f.verify(rec)
	if err != nil {
		return err
	}
	e := f.entry(rec, ledger.TypeFollowupResult, ledger.OutcomeOK)
	e.Handling, e.Count, e.Digest = a.Handling, uint64(len(a.Shared)), sha256.Sum256(rec.Signed)
	if a.Refused {
		e.Outcome = ledger.OutcomeDenied
	}
	// One command ID per follow-up: the poll loop and a read that polled
	// (on another replica, at the same time) record one entry between them.
	rc, err := f.cfg.Audit.Append(ledger.WithCommandID(ctx, "followup_result/"+rec.ID), e)
	if err != nil {
		return fmt.Errorf("record the answer to follow-up %s: %w", rec.ID, err)
	}
	rec.ResultIndex = &rc.Index
	return f.put(ctx, rec)
}

// recordOut commits the followup_out entry of a follow-up whose outcome
// was stored but not recorded.
func (f *followupOut) recordOut(ctx context.Context, rec *sentFollowup) error {
	out := ledger.OutcomeOK
	switch rec.Status {
	case httpapi.FollowupDenied:
		out = ledger.OutcomeDenied
	case httpapi.FollowupFailed:
		out = ledger.OutcomeFailed
	}
	rc, err := f.cfg.Audit.Append(ledger.WithCommandID(ctx, "followup_out/"+rec.ID), f.entry(rec, ledger.TypeFollowupOut, out))
	if err != nil {
		return fmt.Errorf("record follow-up %s: %w", rec.ID, err)
	}
	rec.OutIndex = &rc.Index
	return f.put(ctx, rec)
}

// recoverSending settles a follow-up the node stopped sending: the
// partner holds it (open, with its deadline) or not (failed).
func (f *followupOut) recoverSending(ctx context.Context, rec *sentFollowup) error {
	st, err := f.poll(ctx, rec)
	var denied *exchange.DeniedError
	switch {
	case err == nil:
		return f.settle(ctx, rec, &exchange.FollowupAck{Deadline: st.Deadline, Time: st.Time}, nil)
	case errors.As(err, &denied) && denied.Reason == exchange.ReasonUnknownFollowup:
		return f.settle(ctx, rec, nil, fmt.Errorf("the node stopped while sending it, and the partner holds none: %w", exchange.ErrUnavailable))
	}
	return err
}

package ledger

import (
	"context"
	"fmt"
	"time"
)

// Group commit: on the leader, commands that arrive while earlier ones are
// being committed wait in a queue and go into Raft together, as one opBatch
// entry, so that many commands share one log entry, one replication and
// one state transaction.
//
// The batch in flight answers its callers one by one, and under load they
// come back one by one: a batch formed as soon as the first is back would
// carry only it, and the rest would wait a whole round for the next slot.
// So the batcher keeps an estimate of how many callers are writing (those
// of the batch just answered, those queued and those in flight; lowered to
// those that came back when the wait runs out) and waits up to maxLinger
// for the ones not in flight before it sends a batch. A lone caller never
// waits: the estimate is then one.
//
// A batch holds at most maxBatch commands and, past its first, at most
// maxBatchBytes of them (limits.go).
const (
	// maxInFlight is how many batches may be in Raft at once; the next
	// batch forms while they commit. One measured best with three replicas
	// on two cores (docs/ledger.md, "Throughput"): batches in flight
	// together slow each other's commit more than they overlap.
	maxInFlight = 1
	// maxLinger bounds the wait for callers expected back. With 64
	// writers on the leader of three replicas sharing two cores, 97% are
	// back within 500 µs and a few take a millisecond; one that misses
	// the batch waits a whole round for the next (docs/ledger.md,
	// "Throughput"). The wait ends as soon as the expected callers are
	// back, so it is this long only when fewer come back than expected:
	// once after a burst of callers ends.
	maxLinger = time.Millisecond
)

// pending is one encoded command waiting for its batch.
type pending struct {
	data []byte
	done chan batchResult
}

type batchResult struct {
	o   outcome
	err error
}

// commit stamps a copy of the encoded command cmd with the leader's time
// and commits it through the batcher, returning its outcome once applied
// on this replica, or the error of Raft (raft.ErrNotLeader,
// raft.ErrLeadershipLost, …) or ctx.
func (l *Ledger) commit(ctx context.Context, cmd []byte) (outcome, error) {
	p := &pending{data: stampTime(cmd, l.cfg.Now().UnixNano()), done: make(chan batchResult, 1)}
	select {
	case l.batchQ <- p:
	case <-ctx.Done():
		return outcome{}, fmt.Errorf("%w: %w", ErrNoQuorum, ctx.Err())
	case <-l.stop:
		return outcome{}, ErrClosed
	}
	select {
	case r := <-p.done:
		return r.o, r.err
	case <-ctx.Done():
		// Ambiguous: the command may still commit. Its ID tells.
		return outcome{}, fmt.Errorf("%w: %w", ErrNoQuorum, ctx.Err())
	}
}

// batchLoop forms batches and hands them to Raft, at most maxInFlight at
// a time. It ends when the ledger closes, failing what is queued.
func (l *Ledger) batchLoop() {
	defer close(l.batchDone)
	inflight := make(chan struct{}, maxInFlight)
	var carry *pending
	for {
		var batch []*pending
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case p := <-l.batchQ:
				batch = append(batch, p)
			case <-l.stop:
				l.failQueued(nil)
				return
			}
		}
		select {
		case inflight <- struct{}{}:
		case <-l.stop:
			l.failQueued(batch)
			return
		}
		size := len(batch[0].data)
		expect := int(l.writers.Load() - l.inflightCmds.Load())
		var linger *time.Timer
	drain:
		for len(batch) < maxBatch {
			var p *pending
			select {
			case p = <-l.batchQ:
			default:
				if len(batch) >= expect {
					break drain
				}
				if linger == nil {
					linger = time.NewTimer(maxLinger)
				}
				select {
				case p = <-l.batchQ:
				case <-linger.C:
					// Fewer came back than expected: expect only these
					// next time (settle raises the estimate again when
					// the late ones show up in the queue).
					l.writers.Store(int64(len(batch)) + l.inflightCmds.Load())
					break drain
				case <-l.stop:
					break drain
				}
			}
			if size+len(p.data) > maxBatchBytes {
				carry = p
				break drain
			}
			batch = append(batch, p)
			size += len(p.data)
		}
		if linger != nil {
			linger.Stop()
		}
		l.inflightCmds.Add(int64(len(batch)))
		l.batchWG.Add(1)
		go func() {
			defer l.batchWG.Done()
			defer func() { <-inflight }()
			l.applyBatch(batch)
		}()
	}
}

func (l *Ledger) failQueued(batch []*pending) {
	for _, p := range batch {
		p.done <- batchResult{err: ErrClosed}
	}
	for {
		select {
		case p := <-l.batchQ:
			p.done <- batchResult{err: ErrClosed}
		default:
			return
		}
	}
}

// applyBatch commits one batch and answers each of its commands.
func (l *Ledger) applyBatch(batch []*pending) {
	answer := func(err error) {
		for _, p := range batch {
			p.done <- batchResult{err: err}
		}
	}
	data := batch[0].data
	if len(batch) > 1 {
		members := make([][]byte, len(batch))
		for i, p := range batch {
			members[i] = p.data
		}
		data = encodeBatch(members)
	}
	l.batches.Add(1)
	l.batchedCmds.Add(uint64(len(batch)))
	f := l.raft.Apply(data, l.cfg.WriteTimeout)
	err := l.await(f)
	l.settle(len(batch))
	if err != nil {
		answer(err)
		return
	}
	switch r := f.Response().(type) {
	case outcome:
		batch[0].done <- batchResult{o: r}
	case []outcome:
		if len(r) != len(batch) {
			answer(fmt.Errorf("commit batch: %d outcomes for %d commands", len(r), len(batch)))
			return
		}
		for i, p := range batch {
			p.done <- batchResult{o: r[i]}
		}
	case error:
		answer(r)
	default:
		answer(fmt.Errorf("commit batch: unexpected response %T", r))
	}
}

// settle takes a batch of n commands out of flight, before its callers are
// answered, and updates the estimate of callers writing: the batch's, the
// queued ones and those still in flight, or one less than the last
// estimate when fewer are seen. Only the batch goroutines call it, one at
// a time while maxInFlight is one.
func (l *Ledger) settle(n int) {
	seen := int64(n+len(l.batchQ)) + l.inflightCmds.Add(-int64(n))
	l.writers.Store(max(seen, l.writers.Load()-1))
}

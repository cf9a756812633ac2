package exchange

import (
	"context"
	"sync"
	"time"
)

// partnerLimits are the server's bounds per partner agency, keyed by the
// agency the stream's peer is pinned as, never by what a request claims:
//
//   - in flight: at most maxInFlight requests of one agency and protocol
//     are read and answered at once; the others wait for a slot until their
//     stream's deadline. This bounds what one partner (whatever number of
//     replicas its card lists) holds of the responder's memory (a match
//     request frame is up to 8 MiB) and CPU.
//   - refusals: a token bucket of burst tokens refilled at rate a second.
//     Each match stream draws a token before it is read and gives it back
//     unless it was refused (a denial the server or the node records). A partner
//     with no token left is throttled: its streams are reset unread, and
//     nothing is recorded or evaluated, until the bucket refills. A flood
//     of refused requests thus writes at most burst + rate·t denial
//     entries, however fast it comes.
//
// It holds one small record per agency that opened a stream; agencies are
// pinned partners, and idle records are dropped past maxPartnerRecords.
type partnerLimits struct {
	burst       float64
	rate        float64
	maxInFlight int

	mu sync.Mutex
	m  map[string]*partnerRecord
}

type partnerRecord struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
	dry    bool      // throttled since it last had a token (logged once)
	slots  map[string]chan struct{}
}

// maxPartnerRecords bounds the records kept; past it, records of agencies
// with a full bucket and nothing in flight are dropped.
const maxPartnerRecords = 1024

// newPartnerLimits returns empty per-partner limits; a zero argument means
// its default (DefaultRefusalBurst, DefaultRefusalRate, DefaultMaxInFlight),
// as the configurations say.
func newPartnerLimits(burst int, rate float64, maxInFlight int) *partnerLimits {
	if burst == 0 {
		burst = DefaultRefusalBurst
	}
	if rate == 0 {
		rate = DefaultRefusalRate
	}
	if maxInFlight == 0 {
		maxInFlight = DefaultMaxInFlight
	}
	return &partnerLimits{burst: float64(burst), rate: rate, maxInFlight: maxInFlight, m: map[string]*partnerRecord{}}
}

// record returns agency's record, with its tokens brought up to now. The
// caller holds l.mu.
func (l *partnerLimits) record(agency string, now time.Time) *partnerRecord {
	r, ok := l.m[agency]
	if !ok {
		if len(l.m) >= maxPartnerRecords {
			l.prune(now)
		}
		r = &partnerRecord{tokens: l.burst, at: now, slots: map[string]chan struct{}{}}
		l.m[agency] = r
	}
	if d := now.Sub(r.at); d > 0 {
		r.tokens = min(l.burst, r.tokens+d.Seconds()*l.rate)
		r.at = now
	}
	return r
}

// prune drops the records of agencies with a full bucket and no request in
// flight. The caller holds l.mu.
func (l *partnerLimits) prune(now time.Time) {
	for a, r := range l.m {
		if r.tokens+now.Sub(r.at).Seconds()*l.rate < l.burst {
			continue
		}
		busy := false
		for _, s := range r.slots {
			busy = busy || len(s) > 0
		}
		if !busy {
			delete(l.m, a)
		}
	}
}

// acquire waits for a slot of agency's requests of proto, or for ctx to
// end (false). release gives the slot back.
func (l *partnerLimits) acquire(ctx context.Context, agency, proto string, now time.Time) (release func(), ok bool) {
	l.mu.Lock()
	r := l.record(agency, now)
	s, found := r.slots[proto]
	if !found {
		s = make(chan struct{}, l.maxInFlight)
		r.slots[proto] = s
	}
	l.mu.Unlock()
	select {
	case s <- struct{}{}:
		return func() { <-s }, true
	case <-ctx.Done():
		return nil, false
	}
}

// draw takes one of agency's refusal tokens. It reports false when there
// is none (the stream is throttled) and, then, whether this is the first
// throttled stream since the agency last had one (to log once).
func (l *partnerLimits) draw(agency string, now time.Time) (ok, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.record(agency, now)
	if r.tokens < 1 {
		first = !r.dry
		r.dry = true
		return false, first
	}
	r.tokens--
	r.dry = false
	return true, false
}

// refund gives back the token of a stream that was not refused.
func (l *partnerLimits) refund(agency string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.record(agency, now)
	r.tokens = min(l.burst, r.tokens+1)
}

// admitStream applies the partner limits to a stream of proto from peer:
// it waits for a slot and, when refusals is set, draws a refusal token.
// When the stream may be served it returns done, to be called with whether
// the stream was refused; otherwise it has reset the stream, told
// Throttled, and returns false.
//
// Match streams draw on the refusal budget: the node records every match
// refusal. Sync streams do not: the node records one refusal per partner,
// kind and reason under a policy version, however many are asked, while a
// partner's sync loop meets refusals as routine (kinds on the card it may
// not fetch, kinds of which no set exists yet), which must not throttle
// its matches.
func (s *Server) admitStream(ctx context.Context, from Peer, proto string, st Stream, refusals bool) (done func(refused bool), ok bool) {
	release, ok := s.limits.acquire(ctx, from.Agency, proto, s.cfg.Clock())
	if !ok {
		_ = st.Reset()
		return nil, false
	}
	if !refusals {
		return func(bool) { release() }, true
	}
	ok, first := s.limits.draw(from.Agency, s.cfg.Clock())
	if !ok {
		release()
		if first {
			s.log.Warn("partner throttled: too many refused requests; its streams are reset until its budget refills",
				"peer", string(from.ID), "partner", from.Agency, "proto", proto)
		}
		if s.cfg.Throttled != nil {
			s.cfg.Throttled(from, proto)
		}
		_ = st.Reset()
		return nil, false
	}
	return func(refused bool) {
		if !refused {
			s.limits.refund(from.Agency, s.cfg.Clock())
		}
		release()
	}, true
}

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// The hostile peer as a responder and an owner: it answers the target's
// own queries and syncs with what an attack needs. The target's
// investigator must get a failed (or unavailable) part for it, recorded,
// and keep the copy of its set it held.

// answerMatch makes the hostile node answer every match stream with the
// bytes answer returns for the request; restore serves the real protocol
// again.
func (h *hostilePeer) answerMatch(answer func(m *wire.MatchRequest) []byte) (restore func()) {
	h.node.host.Handle(exchange.ProtoMatch, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		b, err := wire.ReadFrame(wire.NewReader(st), wire.MaxMatchRequest)
		if err != nil {
			_ = st.Reset()
			return
		}
		m, err := wire.UnmarshalMatchRequest(b)
		if err != nil {
			_ = st.Reset()
			return
		}
		if _, err := st.Write(answer(m)); err != nil {
			_ = st.Reset()
			return
		}
		_ = st.CloseWrite()
	})
	return func() { h.node.host.Handle(exchange.ProtoMatch, h.node.xsrv.HandleMatch) }
}

// answerSync is answerMatch for sync streams.
func (h *hostilePeer) answerSync(answer func(m *wire.SyncRequest) []byte) (restore func()) {
	h.node.host.Handle(exchange.ProtoSync, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		b, err := wire.ReadFrame(wire.NewReader(st), wire.MaxSyncRequest)
		if err != nil {
			_ = st.Reset()
			return
		}
		m, err := wire.UnmarshalSyncRequest(b)
		if err != nil {
			_ = st.Reset()
			return
		}
		if _, err := st.Write(answer(m)); err != nil {
			_ = st.Reset()
			return
		}
		_ = st.CloseWrite()
	})
	return func() { h.node.host.Handle(exchange.ProtoSync, h.node.xsrv.HandleSync) }
}

// okAnswer evaluates m honestly with the hostile node's key, as a
// responder would, and returns a signed ok answer, framed, after mutate
// changed it.
func (h *hostilePeer) okAnswer(m *wire.MatchRequest, mutate func(a *wire.MatchAnswer), sign ed25519.PrivateKey) []byte {
	return framed(h.okAnswerMsg(m, mutate, sign).Marshal())
}

func (h *hostilePeer) okAnswerMsg(m *wire.MatchRequest, mutate func(a *wire.MatchAnswer), sign ed25519.PrivateKey) *wire.MatchAnswer {
	a := &wire.MatchAnswer{ID: m.ID, TimeUnixMs: uint64(time.Now().UnixMilli()), Responder: h.agency, Querier: m.Querier,
		Status: wire.StatusOK, BatchSHA256: m.BatchSHA256}
	req, err := psi.UnmarshalEvalRequest(m.EvalRequest)
	for _, reach := range m.Reaches {
		r, v, ok := h.node.sets.responder(m.Kind, m.Epoch, reach)
		if !ok || err != nil {
			continue
		}
		if ev, err := r.Evaluate(req, rand.Reader); err == nil {
			b, _ := ev.MarshalBinary()
			a.Evaluated = append(a.Evaluated, wire.Evaluated{Reach: reach, SetVersion: v})
			a.Evaluations = append(a.Evaluations, b)
		}
	}
	if mutate != nil {
		mutate(a)
	}
	for i := range a.Evaluated {
		if i < len(a.Evaluations) && a.Evaluated[i].EvaluationSHA256 == nil {
			sum := sha256.Sum256(a.Evaluations[i])
			a.Evaluated[i].EvaluationSHA256 = sum[:]
		}
	}
	if sign == nil {
		sign = h.key
	}
	a.Signature = ed25519.Sign(sign, a.SignedBytes())
	return a
}

// askHostile has the target's investigator ask every partner about two
// numbers while the hostile node answers with answer, and returns the
// hostile partner's part as "OUTCOME" (its reason is logged).
func (h *hostilePeer) askHostile(target *Node, answer func(m *wire.MatchRequest) []byte) string {
	h.t.Helper()
	restore := h.answerMatch(answer)
	defer restore()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := target.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "phone", Case: "OP-DE", Basis: "Art. 10",
		Offence: "thb", Purpose: "ask a hostile partner", Values: canon(h.t, "phone", "GB", "07700 900101", "07700 900999")})
	if err != nil {
		return "query error: " + err.Error()
	}
	p := partOf(h.t, res, h.agency)
	h.t.Logf("%s part of %s's query: %s (%s)", h.agency, h.target, p.Outcome, p.Reason)
	return p.Outcome
}

// syncHostile makes the target sync the hostile partner's phone set while
// the hostile node answers with answer, and reports whether the sync
// failed with the copy held kept.
func (h *hostilePeer) syncHostile(target *Node, answer func(m *wire.SyncRequest) []byte) string {
	h.t.Helper()
	restore := h.answerSync(answer)
	defer restore()
	ps := target.partnerSets
	pc := ps.partnerCopy(h.agency, "phone", reachOpen)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.set == nil {
		h.t.Fatalf("%s holds no copy of %s's phone set", h.target, h.agency)
	}
	set, version := pc.set, pc.set.Version()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := ps.syncCopy(ctx, h.agency, "phone", reachOpen, pc, 1)
	switch {
	case err == nil:
		return "sync accepted"
	case pc.set != set || pc.set.Version() != version:
		return "copy changed"
	}
	h.t.Logf("%s sync of %s: %v", h.target, h.agency, err)
	return "sync failed, copy kept"
}

// syncHead returns a signed ok head of a sync answer carrying card and
// announcing n segments.
func (h *hostilePeer) syncHead(m *wire.SyncRequest, card []byte, n uint64, sign ed25519.PrivateKey) []byte {
	a := &wire.SyncAnswer{ID: m.ID, TimeUnixMs: uint64(time.Now().UnixMilli()), Owner: h.agency, Querier: m.Querier,
		Status: wire.StatusOK, Card: card, Segments: n}
	a.Signature = ed25519.Sign(sign, a.SignedBytes())
	return framed(a.Marshal())
}

// pinnedCard returns the hostile agency's card as the target pinned it.
func (h *hostilePeer) pinnedCard(target *Node) []byte {
	h.t.Helper()
	c, ok := target.cards.Pins()[h.agency]
	if !ok {
		h.t.Fatalf("%s has not pinned %s", h.target, h.agency)
	}
	b, err := c.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// responderAttacks are the rows of the hostile peer as responder and
// owner. Each writes, on the target's ledger about the hostile partner,
// the match_out and match_result of the investigator's query (2), or
// nothing for a sync.
func (h *hostilePeer) responderAttacks(target *Node, gbKey ed25519.PrivateKey) []attack {
	garbage := make([]byte, 64)
	_, _ = rand.Read(garbage)
	ask := func(answer func(m *wire.MatchRequest) []byte) func() outcomes {
		return func() outcomes { return outcomes{h.askHostile(target, answer): 1} }
	}
	sync := func(answer func(m *wire.SyncRequest) []byte) func() outcomes {
		return func() outcomes { return outcomes{h.syncHostile(target, answer): 1} }
	}
	card := h.pinnedCard(target)
	return []attack{
		{name: "answer/honest (control)", run: ask(func(m *wire.MatchRequest) []byte { return h.okAnswer(m, nil, nil) }),
			want: httpapi.OutcomeNoHits, entries: 2},
		{name: "answer/malformed", run: ask(func(*wire.MatchRequest) []byte { return framed(garbage) }),
			want: httpapi.OutcomeFailed, entries: 2},
		{name: "answer/oversized frame", run: ask(func(*wire.MatchRequest) []byte {
			return append(frameHeader(wire.MaxMatchAnswer+1), garbage...)
		}), want: httpapi.OutcomeFailed, entries: 2},
		{name: "answer/truncated frame", run: ask(func(*wire.MatchRequest) []byte { return append(frameHeader(1000), garbage...) }),
			want: httpapi.OutcomeUnavailable, entries: 2},
		{name: "answer/trailing byte in frame", run: ask(func(m *wire.MatchRequest) []byte {
			return framed(append(h.okAnswerMsg(m, nil, nil).Marshal(), 0))
		}), want: httpapi.OutcomeFailed, entries: 2},
		{name: "answer/signed by another agency", run: ask(func(m *wire.MatchRequest) []byte { return h.okAnswer(m, nil, gbKey) }),
			want: httpapi.OutcomeFailed, entries: 2},
		{name: "answer/to another request", run: ask(func(m *wire.MatchRequest) []byte {
			return h.okAnswer(m, func(a *wire.MatchAnswer) { a.ID = garbage[:16] }, nil)
		}), want: httpapi.OutcomeFailed, entries: 2},
		{name: "answer/reason outside the list", run: ask(func(m *wire.MatchRequest) []byte {
			return h.okAnswer(m, func(a *wire.MatchAnswer) {
				a.Status, a.Reason, a.Evaluated, a.Evaluations = wire.StatusDenied, "ask_again_with_more", nil, nil
			}, nil)
		}), want: httpapi.OutcomeFailed, entries: 2},
		{name: "answer/identity elements", run: ask(func(m *wire.MatchRequest) []byte {
			return h.okAnswer(m, func(a *wire.MatchAnswer) {
				if len(a.Evaluations) > 0 && len(a.Evaluations[0]) > 10+32 {
					clear(a.Evaluations[0][10 : 10+32])
				}
			}, nil)
		}), want: httpapi.OutcomeFailed, entries: 2},
		{name: "answer/evaluation of another batch", run: ask(func(m *wire.MatchRequest) []byte {
			other := h.match(m.Kind, int(m.PaddedSize), nil, nil)
			other.Epoch, other.ID, other.Querier = m.Epoch, m.ID, m.Querier
			// Signed as the answer to m: digest and ID are m's.
			a := h.okAnswerMsg(other, func(a *wire.MatchAnswer) { a.BatchSHA256 = m.BatchSHA256 }, nil)
			a.Signature = ed25519.Sign(h.key, a.SignedBytes())
			return framed(a.Marshal())
		}), want: httpapi.OutcomeFailed, entries: 2},
		{name: "owner/segments announced, garbage sent", run: sync(func(m *wire.SyncRequest) []byte {
			return append(h.syncHead(m, card, wire.MaxSegments, h.key), framed(garbage)...)
		}), want: "sync failed, copy kept"},
		{name: "owner/oversized segment frame", run: sync(func(m *wire.SyncRequest) []byte {
			return append(h.syncHead(m, card, 1, h.key), append(frameHeader(wire.MaxSegment+1), garbage...)...)
		}), want: "sync failed, copy kept"},
		{name: "owner/head signed by another agency", run: sync(func(m *wire.SyncRequest) []byte {
			return h.syncHead(m, card, 0, gbKey)
		}), want: "sync failed, copy kept"},
		{name: "owner/another agency's card", run: sync(func(m *wire.SyncRequest) []byte {
			gc, err := target.cards.OwnCard()
			if err != nil {
				return framed(garbage)
			}
			b, _ := gc.Encode()
			return h.syncHead(m, b, 0, h.key)
		}), want: "sync failed, copy kept"},
		{name: "owner/segment signed by another agency", run: sync(func(m *wire.SyncRequest) []byte {
			seg := &wire.Segment{Owner: h.agency, Kind: m.Kind, Epoch: m.Epoch, Base: 1, Version: 1}
			sum := sha256.Sum256(garbage)
			seg.SHA256, seg.Data = sum[:], garbage
			seg.Signature = ed25519.Sign(gbKey, seg.SignedBytes())
			return append(h.syncHead(m, card, 1, h.key), framed(seg.Marshal())...)
		}), want: "sync failed, copy kept"},
	}
}

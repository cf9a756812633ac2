package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/ledger"
)

// sendFollowupRaw opens a follow-up stream to the target, writes raw and
// returns "reset", "ok", "denied:REASON" or "unavailable"; a reply not
// signed by the target fails the test.
func (h *hostilePeer) sendFollowupRaw(raw []byte) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	st, err := h.node.host.Open(ctx, h.to, exchange.ProtoFollowup)
	if err != nil {
		return "refused at open"
	}
	defer st.Close()
	if _, err := st.Write(raw); err != nil {
		_ = st.Reset()
		return "reset"
	}
	_ = st.CloseWrite()
	b, err := wire.ReadFrame(bufio.NewReader(st), wire.MaxFollowupStatus)
	if err != nil {
		return "reset"
	}
	pub, err := h.node.cards.AgencyKey(h.target)
	if err != nil {
		h.t.Fatalf("AgencyKey(%s): %v", h.target, err)
	}
	var status wire.Status
	var reason string
	if a, err := wire.UnmarshalFollowupAck(b); err == nil {
		if !ed25519.Verify(pub, a.SignedBytes(), a.Signature) {
			h.t.Fatalf("follow-up ack does not verify")
		}
		status, reason = a.Status, a.Reason
	} else if s, err := wire.UnmarshalFollowupStatus(b); err == nil {
		if !ed25519.Verify(pub, s.SignedBytes(), s.Signature) {
			h.t.Fatalf("follow-up status does not verify")
		}
		status, reason = s.Status, s.Reason
	} else {
		h.t.Fatalf("follow-up reply decodes as neither ack nor status")
	}
	switch status {
	case wire.StatusOK:
		return "ok"
	case wire.StatusDenied:
		return "denied:" + reason
	}
	return "unavailable"
}

// followupReq builds a follow-up request from h of request rid with tags,
// signed with sign (nil: unsigned), after mutate.
func (h *hostilePeer) followupReq(rid [16]byte, tags []exchange.FollowupTag, mutate func(*wire.FollowupRequest), sign ed25519.PrivateKey) []byte {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	m := &wire.FollowupRequest{ID: id, TimeUnixMs: uint64(time.Now().UnixMilli()), Querier: h.agency, Owner: h.target,
		RequestID: rid[:], Kind: "phone", Epoch: h.epoch, Mode: exchange.ModeEnforcement, Basis: "art. 4", Purpose: "p"}
	for _, t := range tags {
		m.Tags = append(m.Tags, wire.FollowupTag{Reach: t.Reach, Tag: append([]byte(nil), t.Tag[:]...)})
	}
	if mutate != nil {
		mutate(m)
	}
	if sign != nil {
		m.Signature = ed25519.Sign(sign, m.SignedBytes())
	} else {
		m.Signature = make([]byte, ed25519.SignatureSize)
	}
	return framed((&wire.FollowupCall{Request: m}).Marshal())
}

// TestHostileFollowup: a pinned partner sends the target follow-ups that
// are malformed, unsigned, stale, for another owner, naming a victim hit in
// enforcement mode, with a tag twice, replayed, or made up; each is refused
// or accepted as the protocol says, never with a record it does not name,
// and every refusal the server answers is a denial entry without the
// tags. A flood of bad signatures costs at most the partner's refusal
// budget in entries, and the target's resources settle.
func TestHostileFollowup(t *testing.T) {
	if testing.Short() {
		t.Skip("two agencies")
	}
	noLeaks(t)
	logs := &syncBuf{}
	gb, th := startAgency(t, "GB", 1, logs), startAgency(t, "TH", 1, logs)
	applyFollowupPolicy(t, gb, "30d")
	applyFollowupPolicy(t, th, "30d")
	gb.pin(th)
	th.pin(gb)
	phones := canon(t, "phone", "TH", "081 234 0001")
	holdRows(t, th, "phone", "TH", reachOpen, []httpapi.Row{{Line: 1, Value: phones[0], Ref: "TH-1", Contact: "desk", Handling: "H2"}})
	target := th.leader()
	rid, _, hits := matchTags(t, gb, th, "phone", exchange.ModeEnforcement, []string{reachOpen}, phones)
	tags := followupTagsOf(reachOpen, hits[reachOpen])
	h := newHostilePeer(t, gb, th, target)
	other := newKey(t)
	var madeUp exchange.FollowupTag
	madeUp.Reach = reachOpen
	_, _ = rand.Read(madeUp.Tag[:])

	valid := h.followupReq(rid, tags, nil, h.key)
	before, _ := partnerEntries(t, target, "GB")
	for _, tc := range []struct {
		name, want string
		raw        []byte
		entry      bool // a denial entry is recorded
	}{
		{"not a frame", "reset", []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3}, false},
		{"garbage in a frame", "reset", framed([]byte("not a follow-up call")), false},
		{"65 tags", "reset", h.followupReq(rid, nil, func(m *wire.FollowupRequest) {
			for range 65 {
				tg := make([]byte, 32)
				_, _ = rand.Read(tg)
				m.Tags = append(m.Tags, wire.FollowupTag{Reach: reachOpen, Tag: tg})
			}
		}, h.key), false},
		{"unsigned", "denied:bad_signature", h.followupReq(rid, tags, nil, nil), true},
		{"signed by another key", "denied:bad_signature", h.followupReq(rid, tags, nil, other), true},
		{"for another owner", "denied:wrong_responder", h.followupReq(rid, tags, func(m *wire.FollowupRequest) { m.Owner = "DE" }, h.key), true},
		{"stale", "denied:clock_skew", h.followupReq(rid, tags, func(m *wire.FollowupRequest) {
			m.TimeUnixMs = uint64(time.Now().Add(-10 * time.Minute).UnixMilli())
		}, h.key), true},
		{"victim hit in enforcement", "denied:reach_not_allowed", h.followupReq(rid, tags, func(m *wire.FollowupRequest) { m.Tags[0].Reach = reachVictim }, h.key), true},
		{"a tag twice", "denied:bad_request", h.followupReq(rid, append(tags, tags...), nil, h.key), true},
		{"no legal basis", "denied:bad_request", h.followupReq(rid, tags, func(m *wire.FollowupRequest) { m.Basis = "" }, h.key), true},
		{"valid", "ok", valid, false},
		{"replayed", "denied:replay", valid, true},
		{"made-up tag", "ok", h.followupReq(rid, []exchange.FollowupTag{madeUp}, nil, h.key), false},
	} {
		n0, _ := partnerEntries(t, target, "GB")
		if got := h.sendFollowupRaw(tc.raw); got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, got, tc.want)
		}
		n1, byType := partnerEntries(t, target, "GB")
		want := 0
		if tc.entry {
			want = 1
		}
		if tc.want == "ok" {
			want = 1 // followup_in
		}
		if n1-n0 != want {
			t.Errorf("%s: %d entries added (%v); want %d", tc.name, n1-n0, byType, want)
		}
	}
	items, err := target.fin.inbox(liaison)
	if err != nil || len(items) != 2 {
		t.Fatalf("inbox = %d items, %v; want the valid and the made-up follow-ups", len(items), err)
	}
	matched := 0
	for _, it := range items {
		switch rs := it.Hits[0].Records; {
		case len(it.Hits) != 1 || len(rs) > 1 || (len(rs) == 1 && rs[0].Reference != "TH-1"):
			t.Errorf("follow-up %s names %+v", it.ID, it.Hits)
		case len(rs) == 1:
			matched++
		}
	}
	if matched != 1 {
		t.Errorf("%d follow-ups name a record; want only the valid one (a made-up tag names nothing)", matched)
	}
	poll := &wire.FollowupPoll{PollID: make([]byte, 16), TimeUnixMs: uint64(time.Now().UnixMilli()), Querier: "GB", Owner: "TH", FollowupID: make([]byte, 16)}
	poll.Signature = ed25519.Sign(h.key, poll.SignedBytes())
	if got := h.sendFollowupRaw(framed((&wire.FollowupCall{Poll: poll}).Marshal())); got != "denied:unknown_followup" {
		t.Errorf("poll of a follow-up never sent: %s; want denied:unknown_followup", got)
	}

	// A flood of bad signatures: the partner's refusal budget (32, refilled
	// at 0.2 a second) bounds the denials recorded; the rest are reset.
	mid, _ := partnerEntries(t, target, "GB")
	base := measure(target)
	start := time.Now()
	res := outcomes{}
	for range 120 {
		res[h.sendFollowupRaw(h.followupReq(rid, tags, nil, other))]++
	}
	elapsed := time.Since(start)
	after, byType := partnerEntries(t, target, "GB")
	if bound := 32 + int(elapsed.Seconds()*0.2) + 1; after-mid > bound || res["reset"] == 0 {
		t.Errorf("flood of 120 bad signatures in %s: %v, %d entries (%v); want at most %d and the rest reset", elapsed, res, after-mid, byType, bound)
	}
	settle(t, target, base, "the flood")
	if after <= before {
		t.Errorf("no entries recorded at all")
	}

	// Nothing of a tag in the denials: they name the follow-up and counts.
	es, err := target.Audit().Entries(context.Background(), ledger.Filter{Partner: "GB", Types: []ledger.Type{ledger.TypeDenial}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		for _, s := range append(headerStrings(&e.Header), bodyStringsOf(&e.Body)...) {
			for _, tg := range append(tags, madeUp) {
				if s != "" && (containsBytes(s, tg.Tag[:]) || containsBytes(s, []byte(hex.EncodeToString(tg.Tag[:])))) {
					t.Errorf("denial %d holds a tag", e.Index)
				}
			}
		}
	}
}

func containsBytes(s string, b []byte) bool { return len(b) > 0 && strings.Contains(s, string(b)) }

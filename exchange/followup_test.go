package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// followupOf is an urgent safeguarding follow-up of request, without tags.
func followupOf(request [16]byte) Followup {
	return Followup{Owner: "DE", RequestID: request, Kind: kind, Epoch: epoch, Mode: ModeSafeguarding,
		Basis: "art. 4 FD 2006/960/JHA", Purpose: "reach the officer in charge", Urgent: true}
}

func tagOf(reach string, h psi.HitTag) FollowupTag { return FollowupTag{Reach: reach, Tag: h.Tag} }

// TestFollowupEndToEnd: FR matches at DE, follows up one open and one
// victim hit; DE maps each tag to exactly the record hit, acknowledges
// with the urgent deadline; FR's poll sees it pending, then the liaison's
// signed answer; a second follow-up is refused by the liaison.
func TestFollowupEndToEnd(t *testing.T) {
	w := newWorld(t, 100, nil)
	d := newDesk(t, w, nil, nil)
	request, hits := d.hits(t)
	if len(hits[ReachOpen]) != 2 || len(hits[ReachVictim]) != 2 || len(hits[ReachWitness]) != 1 {
		t.Fatalf("hits %v; want 2 open, 2 victim, 1 witness", hits)
	}
	f := followupOf(request)
	f.Tags = []FollowupTag{tagOf(ReachOpen, hits[ReachOpen][0]), tagOf(ReachVictim, hits[ReachVictim][1])}
	ack, err := w.client.Followup(context.Background(), d.fr, "12D3KooWDE", f)
	if err != nil {
		t.Fatalf("Followup: %v", err)
	}
	if want := now.Add(8 * time.Hour); !ack.Deadline.Equal(want) {
		t.Errorf("deadline %v; want %v (urgent)", ack.Deadline, want)
	}
	if len(d.inbox.accepted) != 1 {
		t.Fatalf("%d follow-ups accepted; want 1", len(d.inbox.accepted))
	}
	got := d.inbox.accepted[0]
	// reachInputs: input 0 is phone(5), the open record 5; input 3 is
	// phone(victimFrom+2), the victim record 2.
	if want := map[string][]int{ReachOpen: {5}, ReachVictim: {2}}; !reflect.DeepEqual(got.records, want) || got.tags != 2 ||
		got.partner != "FR" || got.request != request || got.id != ack.ID {
		t.Fatalf("accepted %+v; want records %v of FR's request", got, want)
	}
	poll := FollowupPoll{Owner: "DE", ID: ack.ID, RequestID: request, Tags: 2}
	d.answers.set("FR", ack.ID, &FollowupState{Deadline: ack.Deadline})
	st, err := w.client.PollFollowup(context.Background(), d.fr, "12D3KooWDE", poll)
	if err != nil {
		t.Fatalf("PollFollowup (pending): %v", err)
	}
	if st.Answer != nil || st.Signed != nil || !st.Deadline.Equal(ack.Deadline) {
		t.Fatalf("pending status %+v; want no answer, deadline %v", st, ack.Deadline)
	}
	answer := &FollowupAnswer{FollowupID: ack.ID, RequestID: request, Time: now.Add(time.Hour), Owner: "DE", Querier: "FR",
		Handling: "H2", Message: "call before acting",
		Shared: []SharedRecord{{Hit: 1, Reference: "DE-2026-0005", Contact: "LKA liaison desk"}, {Hit: 2, Reference: "DE-2026-V002", Handling: "H3"}}}
	signed, err := SignFollowupAnswer(keyDE, answer)
	if err != nil {
		t.Fatalf("SignFollowupAnswer: %v", err)
	}
	d.answers.set("FR", ack.ID, &FollowupState{Deadline: ack.Deadline, Answer: signed})
	st, err = w.client.PollFollowup(context.Background(), d.fr, "12D3KooWDE", poll)
	if err != nil {
		t.Fatalf("PollFollowup (answered): %v", err)
	}
	if !reflect.DeepEqual(st.Answer, answer) || !bytes.Equal(st.Signed, signed) {
		t.Fatalf("answer %+v; want %+v", st.Answer, answer)
	}
	if again, err := VerifyFollowupAnswer(allPins()["DE"], st.Signed); err != nil || !reflect.DeepEqual(again, answer) {
		t.Fatalf("VerifyFollowupAnswer of the kept bytes = %+v, %v", again, err)
	}

	// A second follow-up (the witness hit), refused by the liaison.
	f2 := followupOf(request)
	f2.Tags, f2.Urgent = []FollowupTag{tagOf(ReachWitness, hits[ReachWitness][0])}, false
	ack2, err := w.client.Followup(context.Background(), d.fr, "12D3KooWDE", f2)
	if err != nil {
		t.Fatalf("second Followup: %v", err)
	}
	if want := now.Add(7 * 24 * time.Hour); !ack2.Deadline.Equal(want) {
		t.Errorf("standard deadline %v; want %v", ack2.Deadline, want)
	}
	if got := d.inbox.accepted[1].records; !reflect.DeepEqual(got, map[string][]int{ReachWitness: {3}}) {
		t.Errorf("witness follow-up maps to %v; want witness record 3", got)
	}
	refusal, err := SignFollowupAnswer(keyDE, &FollowupAnswer{FollowupID: ack2.ID, RequestID: request, Time: now,
		Owner: "DE", Querier: "FR", Refused: true, Reason: "the witness has not consented"})
	if err != nil {
		t.Fatal(err)
	}
	d.answers.set("FR", ack2.ID, &FollowupState{Deadline: ack2.Deadline, Answer: refusal})
	st, err = w.client.PollFollowup(context.Background(), d.fr, "12D3KooWDE", FollowupPoll{Owner: "DE", ID: ack2.ID, RequestID: request, Tags: 1})
	if err != nil || st.Answer == nil || !st.Answer.Refused || st.Answer.Reason != "the witness has not consented" || len(st.Answer.Shared) != 0 {
		t.Fatalf("refused answer: %+v, %v", st, err)
	}
	// GB may not read FR's follow-up.
	gb := clientAs(t, "GB", keyGB, func() time.Time { return now })
	if _, err := gb.PollFollowup(context.Background(), d.gb, "12D3KooWDE", poll); !isDenied(err, ReasonUnknownFollowup) {
		t.Fatalf("GB polls FR's follow-up: %v; want %s", err, ReasonUnknownFollowup)
	}
}

func isDenied(err error, r Reason) bool {
	var d *DeniedError
	return errors.As(err, &d) && d.Reason == r
}

// rawFollowup sends a hand-built request as the client's opener's peer and
// returns the decoded acknowledgement (unverified).
func rawFollowup(t *testing.T, o Opener, m *wire.FollowupRequest) *wire.FollowupAck {
	t.Helper()
	c := clientAs(t, "FR", keyFR, func() time.Time { return now })
	b, err := c.roundTrip(context.Background(), o, "12D3KooWDE", ProtoFollowup, (&wire.FollowupCall{Request: m}).Marshal(), wire.MaxFollowupAck)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	a, err := wire.UnmarshalFollowupAck(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFollowupRefused: a follow-up from another agency, for a request
// never answered, after the window, stale, replayed, or naming a victim
// hit in enforcement mode is refused, signed, and recorded; nothing is
// accepted.
func TestFollowupRefused(t *testing.T) {
	w := newWorld(t, 100, nil)
	d := newDesk(t, w, nil, nil)
	request, hits := d.hits(t)
	open := []FollowupTag{tagOf(ReachOpen, hits[ReachOpen][0])}
	ctx := context.Background()
	clock := func() time.Time { return now }

	// From another agency: GB names FR's request.
	gb := clientAs(t, "GB", keyGB, clock)
	f := followupOf(request)
	f.Tags = open
	if _, err := gb.Followup(ctx, d.gb, "12D3KooWDE", f); !isDenied(err, ReasonUnknownRequest) {
		t.Errorf("GB follows up FR's request: %v; want %s", err, ReasonUnknownRequest)
	}
	// A request DE never answered.
	never := followupOf([16]byte{0xee})
	never.Tags = open
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", never); !isDenied(err, ReasonUnknownRequest) {
		t.Errorf("follow-up of a request never answered: %v; want %s", err, ReasonUnknownRequest)
	}
	// The right request under another kind or mode.
	other := f
	other.Mode, other.Tags = ModeEnforcement, open
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", other); !isDenied(err, ReasonUnknownRequest) {
		t.Errorf("follow-up in another mode than the request's: %v; want %s", err, ReasonUnknownRequest)
	}
	// After the window.
	old := [16]byte{0xaa}
	d.inbox.matches[old] = matchIn{partner: "FR", kind: kind, mode: ModeSafeguarding, epoch: epoch, reaches: Reaches,
		at: now.Add(-31 * 24 * time.Hour)}
	late := followupOf(old)
	late.Tags = open
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", late); !isDenied(err, ReasonWindowClosed) {
		t.Errorf("follow-up after the window: %v; want %s", err, ReasonWindowClosed)
	}
	// Stale.
	stale := f
	stale.Time = now.Add(-3 * time.Minute)
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", stale); !isDenied(err, ReasonClockSkew) {
		t.Errorf("stale follow-up: %v; want %s", err, ReasonClockSkew)
	}
	if len(d.inbox.accepted) != 0 {
		t.Fatalf("%d follow-ups accepted; want none", len(d.inbox.accepted))
	}
	// Replays: the same bytes again (this replica), then the same
	// follow-up ID at another time (the inbox, as the ledger).
	once := f
	once.ID, once.Time = [16]byte{0x11}, now
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", once); err != nil {
		t.Fatalf("first follow-up: %v", err)
	}
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", once); !isDenied(err, ReasonReplay) {
		t.Errorf("the same follow-up again: %v; want %s", err, ReasonReplay)
	}
	once.Time = now.Add(time.Second)
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", once); !isDenied(err, ReasonReplay) {
		t.Errorf("the same follow-up ID at another time: %v; want %s", err, ReasonReplay)
	}
	if len(d.inbox.accepted) != 1 {
		t.Fatalf("%d follow-ups accepted; want the first only", len(d.inbox.accepted))
	}
	// The same bytes to another replica of DE (sharing the ledger) are a
	// retry: the same deadline, nothing recorded twice.
	replica := newDesk(t, w, nil, func(c *FollowupConfig) { c.Inbox = d.inbox })
	once.Time = now
	ack, err := w.client.Followup(ctx, replica.fr, "12D3KooWDE", once)
	if err != nil || !ack.Deadline.Equal(d.inbox.accepted[0].deadline) || len(d.inbox.accepted) != 1 {
		t.Fatalf("retry on another replica: %+v, %v; want the first deadline, one follow-up accepted", ack, err)
	}

	// Hostile requests, built by hand.
	hand := func(mut func(m *wire.FollowupRequest), signer func([]byte) []byte) *wire.FollowupRequest {
		m := &wire.FollowupRequest{ID: bytes.Repeat([]byte{0x42}, 16), TimeUnixMs: unixMs(now), Querier: "FR", Owner: "DE",
			RequestID: request[:], Kind: kind, Epoch: epoch, Mode: ModeEnforcement, Basis: "b", Purpose: "p",
			Tags: []wire.FollowupTag{{Reach: ReachVictim, Tag: hits[ReachVictim][0].Tag[:]}}}
		if mut != nil {
			mut(m)
		}
		m.Signature = signer(m.SignedBytes())
		return m
	}
	signFR := func(b []byte) []byte { return ed25519Sign(keyFR, b) }
	for _, tc := range []struct {
		name string
		o    Opener
		m    *wire.FollowupRequest
		want Reason
	}{
		{"victim hit in enforcement mode", d.fr, hand(nil, signFR), ReasonReachNotAllowed},
		{"witness hit in enforcement mode", d.fr, hand(func(m *wire.FollowupRequest) { m.Tags[0].Reach = ReachWitness }, signFR), ReasonReachNotAllowed},
		{"unknown reach", d.fr, hand(func(m *wire.FollowupRequest) { m.Mode, m.Tags[0].Reach = ModeSafeguarding, "suspect" }, signFR), ReasonBadRequest},
		{"one tag twice", d.fr, hand(func(m *wire.FollowupRequest) { m.Mode, m.Tags = ModeSafeguarding, append(m.Tags, m.Tags[0]) }, signFR), ReasonBadRequest},
		{"no legal basis", d.fr, hand(func(m *wire.FollowupRequest) { m.Mode, m.Basis = ModeSafeguarding, "" }, signFR), ReasonBadRequest},
		{"signed by another key", d.fr, hand(nil, func(b []byte) []byte { return ed25519Sign(keyEvil, b) }), ReasonBadSignature},
		{"FR's request on GB's stream", d.gb, hand(nil, signFR), ReasonWrongPeer},
		{"another owner", d.fr, hand(func(m *wire.FollowupRequest) { m.Owner = "GB" }, signFR), ReasonWrongResponder},
	} {
		a := rawFollowup(t, tc.o, tc.m)
		if a.Status != wire.StatusDenied || Reason(a.Reason) != tc.want || !ed25519Verify(keyDE, a.SignedBytes(), a.Signature) {
			t.Errorf("%s: ack status %d, reason %q; want a signed denial %s", tc.name, a.Status, a.Reason, tc.want)
		}
	}
	if len(d.inbox.accepted) != 1 {
		t.Fatalf("%d follow-ups accepted after the hostile ones; want 1", len(d.inbox.accepted))
	}
	// Every refusal is recorded: by the server (Refused) or by the inbox
	// (its denial), once each.
	wantRefused := []Reason{ReasonClockSkew, ReasonReplay, ReasonReachNotAllowed, ReasonReachNotAllowed, ReasonBadRequest,
		ReasonBadRequest, ReasonBadRequest, ReasonBadSignature, ReasonWrongPeer, ReasonWrongResponder}
	wantDenied := []Reason{ReasonUnknownRequest, ReasonUnknownRequest, ReasonUnknownRequest, ReasonWindowClosed, ReasonReplay}
	if !slices.Equal(d.inbox.refused, wantRefused) || !slices.Equal(d.inbox.denied, wantDenied) {
		t.Errorf("recorded refusals %v and denials %v; want %v and %v", d.inbox.refused, d.inbox.denied, wantRefused, wantDenied)
	}
	// The client refuses to send what the owner would refuse.
	bad := f
	bad.Mode, bad.Tags = ModeEnforcement, []FollowupTag{tagOf(ReachVictim, hits[ReachVictim][0])}
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", bad); err == nil || errors.As(err, new(*DeniedError)) {
		t.Errorf("client sent a victim hit in enforcement mode: %v", err)
	}
	none := f
	none.Tags = nil
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", none); err == nil || errors.As(err, new(*DeniedError)) {
		t.Errorf("client sent a follow-up without hits: %v", err)
	}
	if n := len(d.inbox.refused) + len(d.inbox.denied); n != len(wantRefused)+len(wantDenied) {
		t.Errorf("a follow-up the client refused reached the owner (%d records)", n)
	}
}

// TestFollowupAnswerNotFromOwner: the querier rejects an answer that the
// pinned owner did not sign, a status signed by another key, and an
// answer naming a hit the follow-up did not; the owner's server serves no
// stored answer of another follow-up.
func TestFollowupAnswerNotFromOwner(t *testing.T) {
	w := newWorld(t, 20, nil)
	d := newDesk(t, w, nil, nil)
	request, hits := d.hits(t)
	f := followupOf(request)
	f.Tags = []FollowupTag{tagOf(ReachOpen, hits[ReachOpen][0])}
	ctx := context.Background()
	ack, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", f)
	if err != nil {
		t.Fatal(err)
	}
	poll := FollowupPoll{Owner: "DE", ID: ack.ID, RequestID: request, Tags: 1}
	base := FollowupAnswer{FollowupID: ack.ID, RequestID: request, Time: now, Owner: "DE", Querier: "FR", Handling: "H1",
		Shared: []SharedRecord{{Hit: 1, Reference: "DE-1"}}}
	sign := func(a FollowupAnswer, key func(FollowupAnswer) ([]byte, error)) []byte {
		b, err := key(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	byDE := func(a FollowupAnswer) ([]byte, error) { return SignFollowupAnswer(keyDE, &a) }
	byEvil := func(a FollowupAnswer) ([]byte, error) { return SignFollowupAnswer(keyEvil, &a) }
	hit2 := base
	hit2.Shared = []SharedRecord{{Hit: 2, Reference: "DE-2"}}
	otherReq := base
	otherReq.RequestID = [16]byte{9}
	for _, tc := range []struct {
		name   string
		answer []byte
		want   error
	}{
		{"signed by another key", sign(base, byEvil), ErrVerify},
		{"naming hit 2 of 1", sign(hit2, byDE), ErrVerify},
		{"of another match request", sign(otherReq, byDE), ErrVerify},
	} {
		d.answers.set("FR", ack.ID, &FollowupState{Deadline: ack.Deadline, Answer: tc.answer})
		if _, err := w.client.PollFollowup(ctx, d.fr, "12D3KooWDE", poll); !errors.Is(err, tc.want) {
			t.Errorf("answer %s: %v; want %v", tc.name, err, tc.want)
		}
	}
	// The store hands back an answer of another follow-up: not served.
	stray := base
	stray.FollowupID = [16]byte{7}
	d.answers.set("FR", ack.ID, &FollowupState{Deadline: ack.Deadline, Answer: sign(stray, byDE)})
	if _, err := w.client.PollFollowup(ctx, d.fr, "12D3KooWDE", poll); !errors.Is(err, ErrUnavailable) {
		t.Errorf("stored answer of another follow-up: %v; want ErrUnavailable", err)
	}
	// A server that signs with a key other than DE's pinned one.
	evil := newDesk(t, w, nil, func(c *FollowupConfig) { c.Signer = keyEvil; c.Answers = d.answers })
	d.answers.set("FR", ack.ID, &FollowupState{Deadline: ack.Deadline, Answer: sign(base, byDE)})
	if _, err := w.client.PollFollowup(ctx, evil.fr, "12D3KooWDE", poll); !errors.Is(err, ErrVerify) {
		t.Errorf("status signed by another key: %v; want ErrVerify", err)
	}
	evil.inbox.matches = d.inbox.matches
	f.ID = [16]byte{}
	if _, err := w.client.Followup(ctx, evil.fr, "12D3KooWDE", f); !errors.Is(err, ErrVerify) {
		t.Errorf("acknowledgement signed by another key: %v; want ErrVerify", err)
	}
	// And the genuine answer passes.
	if st, err := w.client.PollFollowup(ctx, d.fr, "12D3KooWDE", poll); err != nil || st.Answer == nil || st.Answer.Shared[0].Reference != "DE-1" {
		t.Fatalf("genuine answer: %+v, %v", st, err)
	}
}

func TestSignFollowupAnswerRefusesPartial(t *testing.T) {
	base := FollowupAnswer{FollowupID: [16]byte{1}, RequestID: [16]byte{2}, Time: now, Owner: "DE", Querier: "FR",
		Handling: "H2", Shared: []SharedRecord{{Hit: 1, Reference: "r"}}}
	if _, err := SignFollowupAnswer(keyDE, &base); err != nil {
		t.Fatalf("whole answer refused: %v", err)
	}
	for name, mut := range map[string]func(a *FollowupAnswer){
		"no querier":               func(a *FollowupAnswer) { a.Querier = "" },
		"no follow-up ID":          func(a *FollowupAnswer) { a.FollowupID = [16]byte{} },
		"no time":                  func(a *FollowupAnswer) { a.Time = time.Time{} },
		"no handling":              func(a *FollowupAnswer) { a.Handling = "" },
		"refusal with records":     func(a *FollowupAnswer) { a.Refused, a.Reason = true, "no" },
		"refusal without a reason": func(a *FollowupAnswer) { a.Refused, a.Shared = true, nil },
		"hit 0":                    func(a *FollowupAnswer) { a.Shared[0].Hit = 0 },
		"hit twice":                func(a *FollowupAnswer) { a.Shared = append(a.Shared, a.Shared[0]) },
		"nothing shared of a hit":  func(a *FollowupAnswer) { a.Shared[0].Reference = "" },
		"long reference":           func(a *FollowupAnswer) { a.Shared[0].Reference = strings.Repeat("r", wire.MaxShortText+1) },
		"newline in message":       func(a *FollowupAnswer) { a.Message = "a\nb" },
	} {
		a := base
		a.Shared = slices.Clone(base.Shared)
		mut(&a)
		if _, err := SignFollowupAnswer(keyDE, &a); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

// TestFollowupLogsHoldNoTags: the owner's server logs follow-up IDs,
// counts and reasons, never a tag (in any encoding), the basis or the
// purpose, nor the answer's content.
func TestFollowupLogsHoldNoTags(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := newWorld(t, 20, nil)
	d := newDesk(t, w, logger, nil)
	request, hits := d.hits(t)
	ctx := context.Background()
	var all []psi.Tag
	for _, reach := range Reaches {
		for _, h := range hits[reach] {
			all = append(all, h.Tag)
		}
	}
	f := followupOf(request)
	f.Tags = []FollowupTag{tagOf(ReachOpen, hits[ReachOpen][0]), tagOf(ReachVictim, hits[ReachVictim][0]), tagOf(ReachWitness, hits[ReachWitness][0])}
	ack, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", f)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.client.Followup(ctx, d.fr, "12D3KooWDE", Followup{ID: ack.ID, Owner: "DE", RequestID: request, Kind: kind, Epoch: epoch,
		Mode: ModeSafeguarding, Tags: f.Tags, Basis: f.Basis, Purpose: f.Purpose})
	gb := clientAs(t, "GB", keyGB, func() time.Time { return now })
	_, _ = gb.Followup(ctx, d.gb, "12D3KooWDE", f)
	signed, err := SignFollowupAnswer(keyDE, &FollowupAnswer{FollowupID: ack.ID, RequestID: request, Time: now, Owner: "DE", Querier: "FR",
		Handling: "H2", Message: "secret-message", Shared: []SharedRecord{{Hit: 1, Reference: "secret-ref", Contact: "secret-contact"}}})
	if err != nil {
		t.Fatal(err)
	}
	d.answers.set("FR", ack.ID, &FollowupState{Deadline: ack.Deadline, Answer: signed})
	if _, err := w.client.PollFollowup(ctx, d.fr, "12D3KooWDE", FollowupPoll{Owner: "DE", ID: ack.ID, RequestID: request, Tags: 3}); err != nil {
		t.Fatal(err)
	}
	_, _ = gb.PollFollowup(ctx, d.gb, "12D3KooWDE", FollowupPoll{Owner: "DE", ID: ack.ID, RequestID: request})
	out := logs.String()
	if !strings.Contains(out, "follow-up accepted") || !strings.Contains(out, hex.EncodeToString(ack.ID[:])) ||
		!strings.Contains(out, string(ReasonUnknownRequest)) {
		t.Fatalf("logs do not show the follow-ups:\n%s", out)
	}
	for i, tag := range all {
		for _, enc := range []string{hex.EncodeToString(tag[:]), strings.ToUpper(hex.EncodeToString(tag[:])),
			base64.StdEncoding.EncodeToString(tag[:]), base64.RawURLEncoding.EncodeToString(tag[:]), string(tag[:]),
			hex.EncodeToString(tag[:8])} {
			if strings.Contains(out, enc) {
				t.Fatalf("tag %d appears in the logs", i)
			}
		}
		// Nor a digest of it alone.
		if sum := sha256.Sum256(tag[:]); strings.Contains(out, hex.EncodeToString(sum[:8])) {
			t.Fatalf("a digest of tag %d appears in the logs", i)
		}
	}
	for _, s := range []string{f.Basis, f.Purpose, "secret-message", "secret-ref", "secret-contact"} {
		if strings.Contains(out, s) {
			t.Fatalf("logs hold %q", s)
		}
	}
}

// TestFollowupThrottled: a partner's refused follow-ups draw on a budget of
// their own; past it its streams are reset unread, and its matches are
// not touched.
func TestFollowupThrottled(t *testing.T) {
	w := newWorld(t, 20, nil)
	var throttled int
	d := newDesk(t, w, nil, func(c *FollowupConfig) {
		c.RefusalBurst, c.RefusalRate = 2, 1e-9
		c.Throttled = func(Peer, string) { throttled++ }
	})
	request, hits := d.hits(t)
	f := followupOf([16]byte{0xee})
	f.Tags = []FollowupTag{tagOf(ReachOpen, hits[ReachOpen][0])}
	ctx := context.Background()
	for i := range 2 {
		if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", f); !isDenied(err, ReasonUnknownRequest) {
			t.Fatalf("refusal %d: %v", i, err)
		}
		f.ID = [16]byte{}
	}
	good := followupOf(request)
	good.Tags = f.Tags
	if _, err := w.client.Followup(ctx, d.fr, "12D3KooWDE", good); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("third follow-up past the budget: %v; want ErrUnavailable (reset)", err)
	}
	d.fr.wg.Wait()
	if throttled != 1 || len(d.inbox.accepted) != 0 {
		t.Fatalf("throttled %d times, %d accepted; want 1 and 0", throttled, len(d.inbox.accepted))
	}
	if _, err := w.client.Match(ctx, w.opener, "12D3KooWDE", func() Query { _, q := w.reachQuery(reachInputs(), ModeEnforcement, ReachOpen); return q }()); err != nil {
		t.Fatalf("match after the follow-up throttle: %v", err)
	}
}

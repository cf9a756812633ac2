package exchange

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/psi"
)

// matchIn is what the owner's match_in entry of an answered request holds
// (no tag, no identifier).
type matchIn struct {
	partner, kind, mode string
	epoch               uint64
	reaches             []string
	at                  time.Time
}

// accepted is what the fake inbox keeps of an accepted follow-up: what a
// followup_in entry and the liaison's inbox hold. No tag.
type accepted struct {
	id, request [16]byte
	partner     string
	tags        int
	records     map[string][]int // reach → record indexes hit
	deadline    time.Time
}

// inbox is a FollowupInbox in memory: it checks the match_in entries and
// the window as node does, maps tags to records with the owner's tag
// indexes, and records accepted and refused follow-ups.
type inbox struct {
	mu       sync.Mutex
	clock    func() time.Time
	window   time.Duration
	matches  map[[16]byte]matchIn
	index    map[string]*psi.TagIndex
	seen     map[[16]byte][32]byte
	accepted []accepted
	refused  []Reason
	denied   []Reason
}

func (b *inbox) deny(r Reason) error {
	b.denied = append(b.denied, r)
	return Deny(r)
}

func (b *inbox) Accept(ctx context.Context, in *InboundFollowup) (time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.matches[in.RequestID]
	if !ok || m.partner != in.Peer.Agency || m.partner != in.Querier || m.kind != in.Kind || m.epoch != in.Epoch || m.mode != in.Mode {
		return time.Time{}, b.deny(ReasonUnknownRequest)
	}
	for _, t := range in.Tags {
		if !slices.Contains(m.reaches, t.Reach) {
			return time.Time{}, b.deny(ReasonUnknownRequest)
		}
	}
	if b.clock().Sub(m.at) > b.window {
		return time.Time{}, b.deny(ReasonWindowClosed)
	}
	if sig, ok := b.seen[in.ID]; ok {
		if sig == in.SignatureSHA256 {
			// A retry of one command, as the ledger has it.
			for _, a := range b.accepted {
				if a.id == in.ID {
					return a.deadline, nil
				}
			}
		}
		return time.Time{}, b.deny(ReasonReplay)
	}
	b.seen[in.ID] = in.SignatureSHA256
	a := accepted{id: in.ID, request: in.RequestID, partner: in.Querier, tags: len(in.Tags), records: map[string][]int{}}
	for _, t := range in.Tags {
		a.records[t.Reach] = append(a.records[t.Reach], b.index[t.Reach].Lookup(t.Tag)...)
	}
	a.deadline = b.clock().Add(7 * 24 * time.Hour)
	if in.Urgent {
		a.deadline = b.clock().Add(8 * time.Hour)
	}
	b.accepted = append(b.accepted, a)
	return a.deadline, nil
}

func (b *inbox) Refused(ctx context.Context, in *InboundFollowup, r Reason) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused = append(b.refused, r)
	return nil
}

// answers is a FollowupAnswers in memory.
type answers struct {
	mu sync.Mutex
	m  map[string]*FollowupState
}

func answerKey(partner string, id [16]byte) string { return fmt.Sprintf("%s/%x", partner, id) }

func (a *answers) State(ctx context.Context, partner string, id [16]byte) (*FollowupState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.m[answerKey(partner, id)]
	if !ok {
		return nil, ErrNoFollowup
	}
	c := *s
	return &c, nil
}

func (a *answers) set(partner string, id [16]byte, s *FollowupState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[answerKey(partner, id)] = s
}

// followupOpener serves ProtoFollowup streams in memory as from.
type followupOpener struct {
	srv  *FollowupServer
	from Peer
	wg   sync.WaitGroup
}

func (o *followupOpener) Open(ctx context.Context, peer PeerID, proto string) (Stream, error) {
	if proto != ProtoFollowup {
		return nil, fmt.Errorf("protocol %s not served", proto)
	}
	a, b := net.Pipe()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		st := pipeStream{b}
		o.srv.Handle(context.Background(), o.from, st)
		_ = st.Close()
	}()
	return pipeStream{a}, nil
}

// desk is DE's follow-up side next to the match world: its server, inbox
// and answers, and openers for FR and GB.
type desk struct {
	w       *world
	srv     *FollowupServer
	inbox   *inbox
	answers *answers
	fr, gb  *followupOpener
}

// newDesk builds DE's follow-up server over w; DE's tag indexes map the
// tags of its three reaches' records. mutate may change the config.
func newDesk(t testing.TB, w *world, logger *slog.Logger, mutate func(*FollowupConfig)) *desk {
	t.Helper()
	held := map[string][][]byte{ReachOpen: phones(0, len(w.outputs)), ReachVictim: phones(victimFrom, victimFrom+10),
		ReachWitness: phones(witnessFrom, witnessFrom+10)}
	d := &desk{w: w, answers: &answers{m: map[string]*FollowupState{}},
		inbox: &inbox{clock: func() time.Time { return now }, window: 30 * 24 * time.Hour,
			matches: map[[16]byte]matchIn{}, index: map[string]*psi.TagIndex{}, seen: map[[16]byte][32]byte{}}}
	for reach, h := range held {
		outs, err := w.reach[reach].Precompute(h)
		if err != nil {
			t.Fatal(err)
		}
		if d.inbox.index[reach], err = psi.NewTagIndex(w.reach[reach].TagDomain("DE"), outs); err != nil {
			t.Fatal(err)
		}
	}
	cfg := FollowupConfig{Agency: "DE", Signer: keyDE, Keys: allPins(), Inbox: d.inbox, Answers: d.answers,
		Clock: func() time.Time { return now }, Timeout: 10 * time.Second, Logger: logger}
	if mutate != nil {
		mutate(&cfg)
	}
	var err error
	if d.srv, err = NewFollowupServer(cfg); err != nil {
		t.Fatal(err)
	}
	d.fr = &followupOpener{srv: d.srv, from: peerFR}
	d.gb = &followupOpener{srv: d.srv, from: peerGB}
	t.Cleanup(d.fr.wg.Wait)
	t.Cleanup(d.gb.wg.Wait)
	return d
}

// answered copies the match requests DE admitted into the inbox's match_in
// entries.
func (d *desk) answered() {
	d.w.adm.mu.Lock()
	defer d.w.adm.mu.Unlock()
	d.inbox.mu.Lock()
	defer d.inbox.mu.Unlock()
	for _, in := range d.w.adm.admits {
		d.inbox.matches[in.ID] = matchIn{partner: in.Querier, kind: in.Kind, mode: in.Mode, epoch: in.Epoch,
			reaches: slices.Clone(in.Reaches), at: in.Time}
	}
}

// hits runs a safeguarding match of reachInputs from FR at DE and returns
// the match request's ID and the hits' tags per reach.
func (d *desk) hits(t testing.TB) ([16]byte, map[string][]psi.HitTag) {
	t.Helper()
	qy, q := d.w.reachQuery(reachInputs(), ModeSafeguarding, Reaches...)
	a, err := d.w.client.Match(context.Background(), d.w.opener, "12D3KooWDE", q)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	out := map[string][]psi.HitTag{}
	for _, r := range a.Results {
		if out[r.Reach], err = qy.HitTags("DE", q.Keys[r.Reach], r.Evaluation, d.w.reachSet(r.Reach)); err != nil {
			t.Fatalf("HitTags(%s): %v", r.Reach, err)
		}
	}
	d.answered()
	return a.ID, out
}

// clientAs returns a follow-up client of agency signing with key.
func clientAs(t testing.TB, agency string, key ed25519.PrivateKey, clock func() time.Time) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Agency: agency, Signer: key, Keys: allPins(), Clock: clock,
		Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ed25519Sign(k ed25519.PrivateKey, b []byte) []byte { return ed25519.Sign(k, b) }

func ed25519Verify(k ed25519.PrivateKey, b, sig []byte) bool {
	return ed25519.Verify(k.Public().(ed25519.PublicKey), b, sig)
}

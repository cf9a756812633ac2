package exchange

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/xborder/xborder/psi"
)

// addDelta makes DE's next delta of holdings phones [from, to) and adds it
// to its sets; view is DE's own copy of the set.
func (w *world) addDelta(view *psi.Set, from, to int) {
	w.t.Helper()
	outs, err := w.psi.Precompute(phones(from, to))
	if err != nil {
		w.t.Fatal(err)
	}
	d, err := w.psi.EncodeDelta(view, outs)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := view.Apply(d); err != nil {
		w.t.Fatal(err)
	}
	b, err := d.MarshalBinary()
	if err != nil {
		w.t.Fatal(err)
	}
	w.sets.add(kind, b)
}

func (w *world) sync(o Opener, have *psi.Set) (*Synced, error) {
	return w.client.Sync(context.Background(), o, "12D3KooWDE", SyncQuery{Owner: "DE", Kind: kind, Reach: ReachOpen, Epoch: epoch, Have: have})
}

// hitsIn matches inputs against DE and looks them up in set.
func (w *world) hitsIn(set *psi.Set, inputs [][]byte) []int {
	w.t.Helper()
	qy, q := w.query(inputs)
	a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
	if err != nil {
		w.t.Fatalf("Match: %v", err)
	}
	hits, err := qy.Match(a.Results[0].Evaluation, set)
	if err != nil {
		w.t.Fatalf("psi Match: %v", err)
	}
	return hits
}

func TestSyncBaseAndDeltas(t *testing.T) {
	w := newWorld(t, 500, nil)
	view := w.holderSet()
	w.addDelta(view, 500, 510)
	w.addDelta(view, 510, 520)

	got, err := w.sync(w.opener, nil)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got.Set.Base() != 1 || got.Set.Version() != 3 || len(got.Segments) != 3 {
		t.Fatalf("synced base %d version %d, %d segments; want 1, 3, 3", got.Set.Base(), got.Set.Version(), len(got.Segments))
	}
	if !got.Key.Equal(w.psi.PublicKey()) {
		t.Error("synced key is not DE's epoch key")
	}
	inputs := [][]byte{phone(499), phone(505), phone(519), phone(520), phone(9999)}
	if hits := w.hitsIn(got.Set, inputs); !slices.Equal(hits, []int{0, 1, 2}) {
		t.Errorf("hits after sync = %v; want [0 1 2]", hits)
	}
	if len(w.aud.served) != 1 {
		t.Fatalf("auditor saw %d syncs; want 1", len(w.aud.served))
	}
	sv := w.aud.served[0]
	if sv.Peer != peerFR || sv.Kind != kind || sv.From != 0 || sv.To != 3 || sv.Segments != 3 || len(sv.Digests) != 3 || sv.ID != got.ID {
		t.Errorf("auditor got %+v", sv)
	}
	for i, seg := range got.Segments {
		if seg.Version != uint32(1+i) || seg.Base != 1 || seg.SHA256 != sv.Digests[i] {
			t.Errorf("segment %d: base %d version %d; want 1, %d and the audited digest", i, seg.Base, seg.Version, 1+i)
		}
	}
}

func TestSyncResume(t *testing.T) {
	w := newWorld(t, 500, nil)
	first, err := w.sync(w.opener, nil)
	if err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	view := w.holderSet()
	w.addDelta(view, 500, 510)
	w.addDelta(view, 510, 530)

	// A second replica with the same bytes serves the rest.
	other, err := NewServer(w.server.cfg)
	if err != nil {
		t.Fatal(err)
	}
	next, err := w.sync(newPipeOpener(t, other, peerFR), first.Set)
	if err != nil {
		t.Fatalf("resumed Sync: %v", err)
	}
	if next.Set != first.Set || next.Set.Version() != 3 || len(next.Segments) != 2 || next.Segments[0].Version != 2 {
		t.Fatalf("resume sent %d segments up to version %d; want deltas 2 and 3 applied to the held set", len(next.Segments), next.Set.Version())
	}
	if sv := w.aud.served[1]; sv.From != 1 || sv.To != 3 || sv.Segments != 2 {
		t.Errorf("auditor got %+v; want from 1 to 3, 2 segments", sv)
	}
	if hits := w.hitsIn(next.Set, [][]byte{phone(525), phone(12)}); !slices.Equal(hits, []int{0, 1}) {
		t.Errorf("hits after resume = %v; want [0 1]", hits)
	}
	// Up to date: nothing more is sent.
	again, err := w.sync(w.opener, next.Set)
	if err != nil || len(again.Segments) != 0 || again.Set.Version() != 3 {
		t.Fatalf("Sync when current = %d segments, %v; want none", len(again.Segments), err)
	}
}

func TestSyncRefused(t *testing.T) {
	tests := []struct {
		name        string
		mutate      func(*world)
		query       SyncQuery
		reason      Reason
		unavailable bool
		verify      bool
	}{
		{name: "kind not allowed", query: SyncQuery{Kind: "email"}, reason: ReasonKindNotAllowed},
		{name: "no set of the kind", mutate: func(w *world) { w.auth["iban"] = true }, query: SyncQuery{Kind: "iban"}, reason: ReasonUnknownEpoch},
		{name: "unknown epoch", query: SyncQuery{Epoch: 9}, reason: ReasonUnknownEpoch},
		{name: "victim set withheld", query: SyncQuery{Reach: ReachVictim}, reason: ReasonReachNotAllowed},
		{name: "witness set withheld", query: SyncQuery{Reach: ReachWitness}, reason: ReasonReachNotAllowed},
		{name: "stale client clock", mutate: func(w *world) {
			w.client = newClient(w.t, keyFR, func() time.Time { return now.Add(3 * time.Minute) })
		}, reason: ReasonClockSkew},
		{name: "request signed by another key", mutate: func(w *world) { w.client = newClient(w.t, keyEvil, func() time.Time { return now }) }, reason: ReasonBadSignature},
		{name: "peer of another agency", mutate: func(w *world) { w.opener = newPipeOpener(w.t, w.server, peerGB) }, reason: ReasonWrongPeer},
		{name: "auditor unavailable", mutate: func(w *world) { w.aud.err = ErrUnavailable }, unavailable: true},
		// No audit, no answer: a denial the auditor cannot record is not sent.
		{name: "refusal not recorded", mutate: func(w *world) { w.aud.refuseErr = ErrUnavailable }, query: SyncQuery{Kind: "email"}, unavailable: true},
		{name: "unknown epoch not recorded", mutate: func(w *world) { w.aud.refuseErr = ErrUnavailable }, query: SyncQuery{Epoch: 9}, unavailable: true},
		{name: "set signed by another key", mutate: func(w *world) { w.server.cfg.Signer = keyEvil }, verify: true},
		{name: "tampered set", mutate: func(w *world) {
			w.opener.wrap = func(s Stream) Stream { return &tamper{Stream: s, at: 2000} }
		}, verify: true},
		{name: "card by another agency key", mutate: func(w *world) { w.sets.card = signedCard(w.t, keyEvil, w.psi.PublicKey()) }, verify: true},
		{name: "epoch key not on the card", mutate: func(w *world) {
			var seed psi.Seed
			seed[0] = 1
			other, _ := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: "DE", Kind: kind, Epoch: epoch, Reach: ReachOpen})
			w.sets.card = signedCard(w.t, keyDE, other.PublicKey())
		}, verify: true},
		{name: "card lists the victim key as the open key", mutate: func(w *world) {
			w.sets.card = signedCard(w.t, keyDE, w.reach[ReachVictim].PublicKey())
		}, verify: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 300, nil)
			if tt.mutate != nil {
				tt.mutate(w)
			}
			q := tt.query
			q.Owner = "DE"
			if q.Kind == "" {
				q.Kind = kind
			}
			if q.Epoch == 0 {
				q.Epoch = epoch
			}
			if q.Reach == "" {
				q.Reach = ReachOpen
			}
			got, err := w.client.Sync(context.Background(), w.opener, "12D3KooWDE", q)
			var d *DeniedError
			switch {
			case tt.reason != "":
				if !errors.As(err, &d) || d.Reason != tt.reason {
					t.Fatalf("Sync = %v; want denial %q", err, tt.reason)
				}
				if n := w.aud.count(); n != 0 {
					t.Fatalf("auditor saw %d syncs of a denied request", n)
				}
				if !slices.Equal(w.aud.refused, []Reason{tt.reason}) {
					t.Fatalf("auditor recorded refusals %v; want [%s]", w.aud.refused, tt.reason)
				}
			case tt.unavailable:
				if !errors.Is(err, ErrUnavailable) || errors.As(err, &d) {
					t.Fatalf("Sync = %v; want ErrUnavailable", err)
				}
			case tt.verify:
				if !errors.Is(err, ErrVerify) || got != nil {
					t.Fatalf("Sync = %v, %v; want ErrVerify and no set", got, err)
				}
			}
		})
	}
}

func TestSyncTamperedDelta(t *testing.T) {
	w := newWorld(t, 300, nil)
	first, err := w.sync(w.opener, nil)
	if err != nil {
		t.Fatal(err)
	}
	view := w.holderSet()
	w.addDelta(view, 300, 310)
	// A delta signed by DE but computed under another epoch key is refused
	// by the held set: it is not the set's key.
	var seed psi.Seed
	seed[0] = 1
	other, _ := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: "DE", Kind: kind, Epoch: epoch, Reach: ReachOpen})
	outs, _ := other.Precompute(phones(310, 320))
	foreign, _ := other.EncodeSet(1, outs)
	fview, _ := psi.NewSet(foreign)
	fd, err := other.EncodeDelta(fview, outs[:1])
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := fd.MarshalBinary()
	h := w.sets.holdings[kind]
	h.Segments[1] = fb
	before := first.Set.Version()
	if _, err := w.sync(w.opener, first.Set); !errors.Is(err, ErrVerify) {
		t.Fatalf("Sync with a foreign delta = %v; want ErrVerify", err)
	}
	if first.Set.Version() != before {
		t.Fatalf("held set moved to version %d after a refused delta", first.Set.Version())
	}
}

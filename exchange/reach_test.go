package exchange

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// reachInputs are FR's inputs: 0-1 held open by DE, 2-3 victims', 4
// a witness's, 5-6 held by nobody.
func reachInputs() [][]byte {
	return [][]byte{phone(5), phone(6), phone(victimFrom + 1), phone(victimFrom + 2), phone(witnessFrom + 3),
		phone(700_000), phone(700_001)}
}

// reachQuery blinds inputs once, with no key bound to the querier, and
// returns a Query asking reaches in mode.
func (w *world) reachQuery(inputs [][]byte, mode string, reaches ...string) (*psi.Query, Query) {
	w.t.Helper()
	q, err := psi.NewQuerier(psi.QuerierConfig{Kind: kind, Epoch: epoch, Dummy: ident.DummyInput})
	if err != nil {
		w.t.Fatal(err)
	}
	qy, req, err := q.Blind(inputs, rand.Reader)
	if err != nil {
		w.t.Fatal(err)
	}
	return qy, Query{Responder: "DE", Kind: kind, Epoch: epoch, Mode: mode, Reaches: reaches,
		Keys: w.keys(reaches...), CaseRef: "case-9", LegalBasis: "art. 12", Offence: "thb", Eval: req}
}

func (w *world) evaluations() map[string]int64 {
	out := map[string]int64{}
	for r, c := range w.evs {
		out[r] = c.calls.Load()
	}
	return out
}

// TestMatchSafeguardingReaches: a safeguarding query asks the three
// reaches; the responder evaluates the one blinded batch under each key,
// and each evaluation hits exactly the records of its reach.
func TestMatchSafeguardingReaches(t *testing.T) {
	w := newWorld(t, 100, nil)
	qy, q := w.reachQuery(reachInputs(), ModeSafeguarding, Reaches...)
	a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	want := map[string][]int{ReachOpen: {0, 1}, ReachVictim: {2, 3}, ReachWitness: {4}}
	if len(a.Results) != 3 {
		t.Fatalf("%d results; want 3", len(a.Results))
	}
	for i, res := range a.Results {
		if res.Reach != Reaches[i] || res.SetVersion != 1 {
			t.Errorf("result %d: reach %s, set version %d; want %s, 1", i, res.Reach, res.SetVersion, Reaches[i])
		}
		hits, err := qy.MatchKey(q.Keys[res.Reach], res.Evaluation, w.reachSet(res.Reach))
		if err != nil {
			t.Fatalf("MatchKey(%s): %v", res.Reach, err)
		}
		if !slices.Equal(hits, want[res.Reach]) {
			t.Errorf("reach %s hits %v; want %v", res.Reach, hits, want[res.Reach])
		}
	}
	for r, n := range w.evaluations() {
		if n != 1 {
			t.Errorf("reach %s evaluated %d times; want 1", r, n)
		}
	}
	if len(w.adm.admits) != 1 || w.adm.admits[0].Mode != ModeSafeguarding || !slices.Equal(w.adm.admits[0].Reaches, Reaches) {
		t.Errorf("Admit got %+v; want one safeguarding request of every reach", w.adm.admits)
	}
}

// TestMatchEnforcementOpenOnly: an enforcement query hits the open records
// only; the victim and witness keys are never used.
func TestMatchEnforcementOpenOnly(t *testing.T) {
	w := newWorld(t, 100, nil)
	qy, q := w.reachQuery(reachInputs(), ModeEnforcement, ReachOpen)
	a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	hits, err := qy.MatchKey(q.Keys[ReachOpen], a.Results[0].Evaluation, w.holderSet())
	if err != nil || !slices.Equal(hits, []int{0, 1}) {
		t.Errorf("hits %v, %v; want [0 1]", hits, err)
	}
	if got := w.evaluations(); got[ReachVictim] != 0 || got[ReachWitness] != 0 {
		t.Errorf("evaluations %v; want none under the victim or witness key", got)
	}
}

// TestMatchReachNotAllowed: a request that asks the victim (or witness)
// reach in enforcement mode is denied by the Admitter with
// ReasonReachNotAllowed and nothing is evaluated, under any reach's key;
// the admitter recorded the denial.
func TestMatchReachNotAllowed(t *testing.T) {
	for _, reaches := range [][]string{{ReachOpen, ReachVictim}, {ReachVictim}, {ReachWitness}, Reaches} {
		w := newWorld(t, 100, nil)
		_, q := w.reachQuery(reachInputs(), ModeEnforcement, reaches...)
		_, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
		var d *DeniedError
		if !errors.As(err, &d) || d.Reason != ReasonReachNotAllowed {
			t.Fatalf("Match(enforcement, %v) = %v; want denial %s", reaches, err, ReasonReachNotAllowed)
		}
		for r, n := range w.evaluations() {
			if n != 0 {
				t.Errorf("reaches %v: reach %s evaluated %d times; want 0", reaches, r, n)
			}
		}
		if len(w.adm.denied) != 1 || len(w.adm.admits) != 0 {
			t.Errorf("reaches %v: %d denials recorded, %d admits; want 1, 0", reaches, len(w.adm.denied), len(w.adm.admits))
		}
	}
}

// TestMatchHostileReachRequest: a querier that builds and signs its own
// request for the victim reach in enforcement mode, with a batch it
// blinded however it likes, gets a signed denial and no evaluation.
func TestMatchHostileReachRequest(t *testing.T) {
	w := newWorld(t, 100, nil)
	for _, reaches := range [][]string{{ReachVictim}, {ReachOpen, ReachWitness}} {
		m := w.request(10)
		m.Reaches = reaches
		a, err := w.rawMatch(peerFR, m, keyFR)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if a.Status != wire.StatusDenied || Reason(a.Reason) != ReasonReachNotAllowed || len(a.Evaluations) != 0 {
			t.Fatalf("answer status %d reason %q with %d evaluations; want a denial %s and none",
				a.Status, a.Reason, len(a.Evaluations), ReasonReachNotAllowed)
		}
	}
	for r, n := range w.evaluations() {
		if n != 0 {
			t.Errorf("reach %s evaluated %d times; want 0", r, n)
		}
	}
	if len(w.adm.denied) != 2 {
		t.Errorf("%d denials recorded; want 2", len(w.adm.denied))
	}
}

// swapped is a cheating Responders: it evaluates each reach under the key
// of another.
type swapped struct {
	w    *world
	swap map[string]string
}

func (s swapped) Responder(k string, e uint64, reach string) (Evaluator, uint32, error) {
	return s.w.evs[s.swap[reach]], 1, nil
}

// TestMatchWrongReachKey: the client refuses an answer whose evaluation
// of a reach was computed under another reach's key (a responder that
// answers an enforcement query with its victim key, or swaps two reaches),
// and one whose evaluations name other reaches than asked.
func TestMatchWrongReachKey(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    string
		reaches []string
		swap    map[string]string
	}{
		{"victim key for the open reach", ModeEnforcement, []string{ReachOpen}, map[string]string{ReachOpen: ReachVictim}},
		{"open and victim swapped", ModeSafeguarding, []string{ReachOpen, ReachVictim},
			map[string]string{ReachOpen: ReachVictim, ReachVictim: ReachOpen}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 100, nil)
			w.server.cfg.Responders = swapped{w: w, swap: tt.swap}
			_, q := w.reachQuery(reachInputs(), tt.mode, tt.reaches...)
			if a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q); !errors.Is(err, ErrVerify) {
				t.Fatalf("Match = %+v, %v; want ErrVerify", a, err)
			}
		})
	}
	t.Run("other reach than asked", func(t *testing.T) {
		w := newWorld(t, 100, nil)
		_, q := w.reachQuery(reachInputs(), ModeEnforcement, ReachOpen)
		q.ID = [16]byte{7}
		q.Time = now
		ev, err := w.reach[ReachVictim].Evaluate(q.Eval, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		eb, _ := ev.MarshalBinary()
		req, _ := q.Eval.MarshalBinary()
		bsum, esum := sha256.Sum256(req), sha256.Sum256(eb)
		a := &wire.MatchAnswer{ID: q.ID[:], TimeUnixMs: uint64(now.UnixMilli()), Responder: "DE", Querier: "FR",
			Status: wire.StatusOK, BatchSHA256: bsum[:],
			Evaluated:   []wire.Evaluated{{Reach: ReachVictim, SetVersion: 1, EvaluationSHA256: esum[:]}},
			Evaluations: [][]byte{eb}}
		a.Signature = ed25519.Sign(keyDE, a.SignedBytes())
		q.Keys[ReachVictim] = w.reach[ReachVictim].PublicKey()
		if got, err := w.client.Match(context.Background(), answerOpener{a.Marshal()}, "12D3KooWDE", q); !errors.Is(err, ErrVerify) {
			t.Fatalf("Match = %+v, %v; want ErrVerify", got, err)
		}
	})
}

// TestMatchClientReaches: the client refuses to send a query without a
// valid mode, with reaches unknown, repeated or out of order, or without
// the pinned key of a reach it asks.
func TestMatchClientReaches(t *testing.T) {
	w := newWorld(t, 10, nil)
	for name, change := range map[string]func(q *Query){
		"no mode":        func(q *Query) { q.Mode = "" },
		"no reach":       func(q *Query) { q.Reaches = nil },
		"unknown reach":  func(q *Query) { q.Reaches = []string{"suspect"} },
		"repeated reach": func(q *Query) { q.Reaches = []string{ReachOpen, ReachOpen} },
		"out of order":   func(q *Query) { q.Reaches = []string{ReachVictim, ReachOpen} },
		"no key":         func(q *Query) { q.Reaches = []string{ReachOpen, ReachVictim} },
	} {
		_, q := w.reachQuery(phones(0, 2), ModeSafeguarding, ReachOpen)
		change(&q)
		if _, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q); err == nil {
			t.Errorf("%s: Match sent the query", name)
		}
	}
	if n := w.ev.calls.Load(); n != 0 {
		t.Errorf("Evaluate called %d times; want 0", n)
	}
}

// TestSyncReach: a partner allowed the victim reach gets that reach's set,
// checked against the card's victim key; the auditor records the reach.
func TestSyncReach(t *testing.T) {
	w := newWorld(t, 100, nil)
	w.auth[holdingKey(kind, ReachVictim)] = true
	got, err := w.client.Sync(context.Background(), w.opener, "12D3KooWDE",
		SyncQuery{Owner: "DE", Kind: kind, Reach: ReachVictim, Epoch: epoch})
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got.Set.Reach() != ReachVictim || !got.Key.Equal(w.reach[ReachVictim].PublicKey()) {
		t.Errorf("synced set of reach %s; want the victim set under the victim key", got.Set.Reach())
	}
	if len(w.aud.served) != 1 || w.aud.served[0].Reach != ReachVictim {
		t.Errorf("auditor saw %+v; want one victim sync", w.aud.served)
	}
	// The open reach's set served for a victim request is refused.
	w.sets.holdings[holdingKey(kind, ReachVictim)] = w.sets.holdings[kind]
	if _, err := w.client.Sync(context.Background(), w.opener, "12D3KooWDE",
		SyncQuery{Owner: "DE", Kind: kind, Reach: ReachVictim, Epoch: epoch}); !errors.Is(err, ErrVerify) {
		t.Errorf("Sync of the open set as the victim set = %v; want ErrVerify", err)
	}
}

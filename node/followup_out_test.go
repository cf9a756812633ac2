package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
	"github.com/xborder/xborder/psi"
)

// querierFollowupPolicy is matchPolicy with follow-ups: partners follow up the
// kinds they match, investigators follow up, liaisons answer, auditors
// read every follow-up.
const querierFollowupPolicy = matchPolicy + matchAdmins + `
@id("gb-followup") permit (principal == Agency::"GB", action == Action::"followup", resource is Kind);
@id("th-followup") permit (principal == Agency::"TH", action == Action::"followup", resource is Kind);
@id("investigators-followup") permit (principal in Role::"investigator", action == Action::"followup", resource is Kind);
@id("liaisons") permit (principal in Role::"liaison", action == Action::"answer_followup", resource is Kind);
@id("auditors-followup") permit (principal in Role::"auditor", action == Action::"read_followup", resource is Kind);
`

// applyFollowupPolicy puts querierFollowupPolicy (and limits) in force at every
// replica of a.
func (a *agency) applyFollowupPolicy(limits string) {
	t := a.t
	t.Helper()
	first := a.leader()
	v, err := first.policy.ApplyPolicy(context.Background(), "user:admin", policy.Files{PolicyName: "policy.cedar",
		Policy: []byte(querierFollowupPolicy), LimitsName: "limits.yaml", Limits: []byte(limits)}, first.users.policyManagers)
	if err != nil {
		t.Fatalf("%s ApplyPolicy: %v", a.cc, err)
	}
	for _, n := range a.running() {
		until(t, a.cc+" follow-up policy in force", func() bool { return n.Policy().Version() == v })
	}
}

// TestFollowupHitsKept: a query keeps, per partner, the tags of its hits
// only, numbered as its answer numbers them; each tag maps, at the owner,
// to exactly the record hit; a number that is no hit, a user who did not
// ask, a request with no hits kept are refused before anything is
// recorded or sent; the tags are erased after the window.
func TestFollowupHitsKept(t *testing.T) {
	if testing.Short() {
		t.Skip("two agencies: not in -short")
	}
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 1, logs)
	gb.applyFollowupPolicy(matchLimits)
	th.applyFollowupPolicy(matchLimits)
	held := []string{"+44 7700 900101", "+44 7700 900202"}
	th.hold("phone", "GB", append(slices.Clone(held), fillers(40000, 20)...)...)
	gb.pin(th)
	th.pin(gb)
	q, r := gb.leader(), th.leader()
	var streams atomic.Int64
	r.host.Handle(exchange.ProtoFollowup, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		streams.Add(1)
		_ = st.Reset()
	})

	// 07700 900101 is asked twice (two spellings); 07700 900999 is no hit.
	values := canon(t, "phone", "GB", "07700 900101", "07700 900999", "07700 900202", "+44 7700 900101")
	res, err := q.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "phone", Case: "OP-F", Basis: "Art. 10", Offence: "thb",
		Purpose: "p", Partners: []string{"TH"}, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	p := partOf(t, res, "TH")
	if !slices.Equal(p.Hits, []int{0, 2, 3}) || !slices.Equal(p.HitNumbers, []int{1, 2, 1}) {
		t.Fatalf("TH part: hits %v numbers %v; want hits [0 2 3] numbered [1 2 1] (one number per identifier)", p.Hits, p.HitNumbers)
	}
	k, err := q.followOut.cfg.Hits.lookup(p.RequestID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Tags) != 2 || k.User != ivan.Name || k.Query != res.ID || k.Partner != "TH" || k.Epoch != p.Epoch {
		t.Fatalf("kept hits = %+v; want 2 tags of ivan's query %s at TH, epoch %d", k, res.ID, p.Epoch)
	}
	// Kept in the data group's records, and nowhere near the ledger.
	raw, err := q.Data().Get(nsFollowupHits, p.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	var stored keptHits
	if err := json.Unmarshal(raw, &stored); err != nil || len(stored.Tags) != 2 {
		t.Fatalf("stored kept hits: %v, %d tags", err, len(stored.Tags))
	}
	mustNotContain(t, "kept hits", raw, secrets("phone", values))

	t.Run("tag maps to exactly the hit record", func(t *testing.T) {
		// The owner's side: TH computes the outputs of its own records
		// (here: the two held numbers, the number GB asked that missed,
		// a filler) and maps tags to them.
		resp, _, ok := r.sets.responder("phone", p.Epoch, reachOpen)
		if !ok {
			t.Fatal("TH has no phone responder")
		}
		records := canon(t, "phone", "GB", append(slices.Clone(held), "07700 900999", fillers(40000, 1)[0])...)
		ins := make([][]byte, len(records))
		for i, c := range records {
			ins[i] = ident.Input(ident.Phone, c)
		}
		outs, err := resp.Precompute(ins)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := psi.NewTagIndex(resp.TagDomain("TH"), outs)
		if err != nil {
			t.Fatal(err)
		}
		for n, want := range [][]int{{0}, {1}} {
			if got := idx.Lookup(tagOf(k.Tags[n])); !slices.Equal(got, want) || k.Tags[n].Reach != reachOpen {
				t.Errorf("hit #%d (%s) maps to TH records %v; want %v", n+1, k.Tags[n].Reach, got, want)
			}
		}
	})

	refused := func(what string, u httpapi.User, id string, req httpapi.FollowupRequest, want error) {
		t.Helper()
		before := len(byType(t, q, ledger.TypeFollowupOut)) + len(byType(t, q, ledger.TypeDenial))
		_, err := q.followOut.Send(ctx, u, id, req)
		if !errors.Is(err, want) {
			t.Errorf("%s: Send = %v; want %v", what, err, want)
		}
		if n := len(byType(t, q, ledger.TypeFollowupOut)) + len(byType(t, q, ledger.TypeDenial)); n != before {
			t.Errorf("%s: %d follow-up or denial entries recorded; want none", what, n-before)
		}
		if recs, _ := q.followOut.all(); len(recs) != 0 {
			t.Errorf("%s: %d follow-up records; want none", what, len(recs))
		}
	}
	good := httpapi.FollowupRequest{Partner: "TH", Hits: []int{1, 2}, Basis: "MLA 2024/17", Purpose: "identify the case officer"}
	t.Run("refused before anything is sent", func(t *testing.T) {
		noHit := good
		noHit.Hits = []int{1, 3} // the query had two hits at TH: 3 names the number that missed, or nothing
		refused("a number that is no hit", ivan, res.ID, noHit, httpapi.ErrBadRequest)
		zero := good
		zero.Hits = []int{0}
		refused("hit 0", ivan, p.RequestID, zero, httpapi.ErrBadRequest)
		twice := good
		twice.Hits = []int{2, 2}
		refused("a hit named twice", ivan, p.RequestID, twice, httpapi.ErrBadRequest)
		none := good
		none.Hits = nil
		refused("no hit named", ivan, p.RequestID, none, httpapi.ErrBadRequest)
		noBasis := good
		noBasis.Basis = " "
		refused("no legal basis", ivan, p.RequestID, noBasis, httpapi.ErrBadRequest)
		noPartner := good
		noPartner.Partner = ""
		refused("a query ID without partner", ivan, res.ID, noPartner, httpapi.ErrBadRequest)
		wrongPartner := good
		wrongPartner.Partner = "DE"
		refused("a request of another partner", ivan, p.RequestID, wrongPartner, httpapi.ErrBadRequest)
		refused("another investigator", httpapi.User{Name: "ivy", Role: "investigator"}, res.ID, good, httpapi.ErrForbidden)
		refused("a request never sent", ivan, "00112233445566778899aabbccddeeff", good, httpapi.ErrNotFound)
		if n := streams.Load(); n != 0 {
			t.Errorf("%d follow-up streams reached TH; want none", n)
		}
	})

	t.Run("no hits, nothing kept", func(t *testing.T) {
		res, err := q.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "phone", Case: "OP-F", Basis: "Art. 10", Offence: "thb",
			Purpose: "p", Partners: []string{"TH"}, Values: canon(t, "phone", "GB", "07700 900998")})
		if err != nil {
			t.Fatal(err)
		}
		p := partOf(t, res, "TH")
		if p.Outcome != httpapi.OutcomeNoHits || len(p.HitNumbers) != 0 {
			t.Fatalf("TH part = %+v; want no hits, no numbers", p)
		}
		if _, err := q.Data().Get(nsFollowupHits, p.RequestID); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("hits kept of a request without hits: %v", err)
		}
	})

	t.Run("erased after the window", func(t *testing.T) {
		h := *q.followOut.cfg.Hits
		h.now = func() time.Time { return time.Now().Add(DefaultFollowupWindow + time.Minute) }
		if _, err := h.lookup(p.RequestID, ""); !errors.Is(err, httpapi.ErrNotFound) {
			t.Errorf("lookup past the window = %v; want ErrNotFound", err)
		}
		n, err := h.sweep(ctx)
		if err != nil || n < 1 {
			t.Fatalf("sweep = %d, %v; want the kept hits erased", n, err)
		}
		if _, err := q.Data().Get(nsFollowupHits, p.RequestID); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("kept hits after the sweep: %v; want none", err)
		}
	})
}

// TestNumberHits: one number per identifier and reach, in the order of
// first appearance.
func TestNumberHits(t *testing.T) {
	a, b := psi.Tag{1}, psi.Tag{2}
	hits := []reachHit{{0, reachOpen, a}, {0, "victim", a}, {1, reachOpen, b}, {2, reachOpen, a}}
	nums, tags := numberHits(hits)
	if !slices.Equal(nums, []int{1, 2, 3, 1}) || len(tags) != 3 || tags[1].Reach != "victim" || tagOf(tags[2]) != b {
		t.Errorf("numberHits = %v, %+v; want [1 2 3 1] over 3 tags (open a, victim a, open b)", nums, tags)
	}
	if nums, tags := numberHits(nil); len(nums) != 0 || len(tags) != 0 {
		t.Errorf("numberHits(nil) = %v, %v; want nothing", nums, tags)
	}
}

// TestPollSchedule: an open urgent follow-up is due on every pass, a
// standard one every standardEvery passes, a failing one after a wait
// that doubles up to maxPollBackoff; a settled one is forgotten.
func TestPollSchedule(t *testing.T) {
	f := newFollowupOut(followupOutConfig{Interval: time.Minute})
	t0 := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	urgent := &sentFollowup{SentFollowup: httpapi.SentFollowup{ID: "u", Status: httpapi.FollowupOpen, Urgent: true}}
	standard := &sentFollowup{SentFollowup: httpapi.SentFollowup{ID: "s", Status: httpapi.FollowupOpen}}
	for _, rec := range []*sentFollowup{urgent, standard} {
		if !f.due(rec.ID, t0) {
			t.Errorf("%s: not due before its first poll", rec.ID)
		}
		f.schedule(rec, t0, nil)
	}
	next := t0.Add(time.Minute)
	if !f.due("u", next) || f.due("s", next) {
		t.Errorf("one pass later: urgent due %v, standard due %v; want true, false", f.due("u", next), f.due("s", next))
	}
	if at := t0.Add(standardEvery * time.Minute); !f.due("s", at) || f.due("s", at.Add(-time.Minute)) {
		t.Errorf("standard follow-up not due exactly after %d passes", standardEvery)
	}
	now, waits := t0, []time.Duration{}
	for range 10 {
		f.schedule(urgent, now, errors.New("unavailable"))
		waits = append(waits, f.next["u"].backoff)
		now = f.next["u"].at
	}
	if waits[0] != time.Minute || waits[1] != 2*time.Minute || waits[2] != 4*time.Minute || waits[9] != maxPollBackoff {
		t.Errorf("waits after failures = %v; want 1m, 2m, 4m, ... up to %v", waits, maxPollBackoff)
	}
	f.schedule(urgent, now, nil)
	if f.next["u"].backoff != 0 || !f.due("u", now.Add(time.Minute)) {
		t.Errorf("after a poll that worked: %+v; want the urgent cadence again", f.next["u"])
	}
	urgent.Status = httpapi.FollowupAnswered
	f.schedule(urgent, now, nil)
	if _, ok := f.next["u"]; ok {
		t.Error("an answered follow-up is still scheduled")
	}
}

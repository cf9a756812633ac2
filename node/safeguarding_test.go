package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// safeguardLimits is matchLimits with safeguarding rules for GB and TH's
// phone numbers (the agreement both hold) and none for DE. The safeguarding
// budget is one query of 4 padded identifiers a day.
var safeguardLimits = strings.NewReplacer(
	"  GB:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2}\n",
	"  GB:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2,\n"+
		"            safeguarding: {reaches: [open, victim, witness], daily_budget: 4, handling: H3, instruction: \"call the victim liaison; never for enforcement\"}}\n",
	"  TH:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2}\n",
	"  TH:\n    phone: {max_query: 65536, daily_budget: 1000000, disclosure: hits, handling: H2,\n"+
		"            safeguarding: {reaches: [open, victim, witness], daily_budget: 4, handling: H3, instruction: \"call the victim liaison; never for enforcement\"}}\n",
).Replace(matchLimits)

// applyLimits puts policy files with limits in force on every replica of a.
func (a *agency) applyLimits(limits string) {
	t := a.t
	t.Helper()
	n := a.leader()
	v, err := n.policy.ApplyPolicy(context.Background(), "user:admin", policy.Files{PolicyName: "policy.cedar",
		Policy: []byte(matchPolicy + matchAdmins), LimitsName: "limits.yaml", Limits: []byte(limits)}, n.users.policyManagers)
	if err != nil {
		t.Fatalf("%s ApplyPolicy: %v", a.cc, err)
	}
	for _, r := range a.running() {
		until(t, a.cc+" policy in force", func() bool { return r.Policy().Version() == v })
	}
}

// holdRows imports rows (with their classes) of kind and waits until every
// running replica serves every reach's set of the current epoch.
func (a *agency) holdRows(kind, region string, rows []httpapi.Row) {
	t := a.t
	t.Helper()
	ctx := context.Background()
	n := a.leader()
	imp, err := n.holdings.BeginImport(ctx, stew, httpapi.BeginImport{Kind: kind, Region: region})
	if err != nil {
		t.Fatalf("%s BeginImport(%s): %v", a.cc, kind, err)
	}
	if r, err := n.holdings.ImportRows(ctx, stew, imp.ID, rows); err != nil || len(r.Invalid) > 0 {
		t.Fatalf("%s ImportRows: %v, %v", a.cc, r.Invalid, err)
	}
	if _, err := n.holdings.CommitImport(ctx, stew, imp.ID, httpapi.CommitImport{}); err != nil {
		t.Fatalf("%s CommitImport: %v", a.cc, err)
	}
	for _, r := range a.running() {
		poll(t, a.cc+" sets of every reach built", 5*time.Minute, func() bool { return r.sets.epochReady(r.epochs.currentEpoch()) })
	}
}

// TestSafeguarding walks issue 22 on three agencies: TH (two replicas)
// holds a suspect's, a victim's and a witness's phone number; GB and TH
// agree on safeguarding queries of phone numbers, DE does not.
func TestSafeguarding(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 2, logs)
	de := startAgency(t, "DE", 1, logs)
	for _, a := range []*agency{gb, th, de} {
		a.applyLimits(safeguardLimits)
	}
	numbers := canon(t, "phone", "TH", "081 234 5601", "081 234 5602", "081 234 5603", "081 234 5699")
	suspect, victim, witness := numbers[0], numbers[1], numbers[2]
	th.holdRows("phone", "TH", []httpapi.Row{
		{Line: 1, Value: suspect, Class: "suspect"},
		{Line: 2, Value: victim, Class: "victim"},
		{Line: 3, Value: witness, Class: "witness"},
	})
	gb.pin(th)
	th.pin(gb)
	de.pin(th)
	th.pin(de)
	q := gb.leader()
	req := httpapi.QueryRequest{Kind: "phone", Case: "OP-V", Basis: "Art. 10", Offence: "thb", Purpose: "p",
		Partners: []string{"TH"}, Values: numbers}

	t.Run("keys per reach differ and agree across replicas", func(t *testing.T) {
		var first map[string][]byte
		for i, n := range th.running() {
			c, err := n.cards.OwnCard()
			if err != nil {
				t.Fatal(err)
			}
			e := n.epochs.currentEpoch()
			keys := map[string][]byte{}
			for _, reach := range reachNames {
				keys[reach] = c.EpochKey(e, "phone", reach)
				resp, _, ok := n.sets.responder("phone", e, reach)
				if !ok {
					t.Fatalf("replica %d serves no %s set", i+1, reach)
				}
				kb, _ := resp.PublicKey().MarshalBinary()
				if keys[reach] == nil || !bytes.Equal(kb, keys[reach]) {
					t.Errorf("replica %d: the %s responder's key is not its card's", i+1, reach)
				}
			}
			if bytes.Equal(keys[reachOpen], keys[reachVictim]) || bytes.Equal(keys[reachOpen], keys[reachWitness]) ||
				bytes.Equal(keys[reachVictim], keys[reachWitness]) {
				t.Errorf("replica %d: two reaches share a key", i+1)
			}
			if first == nil {
				first = keys
				continue
			}
			for _, reach := range reachNames {
				if !bytes.Equal(keys[reach], first[reach]) {
					t.Errorf("replica %d's %s key differs from replica 1's", i+1, reach)
				}
				a, b := n.sets.setStats("phone", e, reach), th.running()[0].sets.setStats("phone", e, reach)
				if a.Digest == "" || a.Digest != b.Digest {
					t.Errorf("replica %d's %s set digest %q; replica 1's %q", i+1, reach, a.Digest, b.Digest)
				}
			}
		}
	})

	t.Run("enforcement hits the suspect only", func(t *testing.T) {
		res, err := q.querier.Query(ctx, ivan, req)
		if err != nil {
			t.Fatal(err)
		}
		p := partOf(t, res, "TH")
		if p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, []int{0}) || !slices.Equal(p.HitReaches, []string{reachOpen}) {
			t.Fatalf("TH part = %+v; want the suspect alone, in the open reach", p)
		}
		if res.Mode != "enforcement" || p.Instruction != "" {
			t.Errorf("mode %q instruction %q; want enforcement, none", res.Mode, p.Instruction)
		}
		checkModeEntries(t, q, p.RequestID, "enforcement", "open", ledger.TypeMatchOut, ledger.TypeMatchResult)
		checkModeEntries(t, th.leader(), p.RequestID, "enforcement", "open", ledger.TypeMatchIn)
	})

	t.Run("a hostile enforcement request for the victim reach is refused and recorded", func(t *testing.T) {
		r := th.leader()
		h := newHostilePeer(t, gb, th, r)
		ins := len(byType(t, r, ledger.TypeMatchIn))
		for _, reaches := range [][]string{{reachOpen, reachVictim}, {reachVictim}, {reachWitness}} {
			m := h.match("phone", 4, func(m *wire.MatchRequest) { m.Reaches = reaches }, nil)
			if got := h.sendMatch(m); got != "denied:"+string(exchange.ReasonReachNotAllowed) {
				t.Errorf("enforcement request for %v: %s; want denied:reach_not_allowed", reaches, got)
			}
			id := hex.EncodeToString(m.ID)
			e := hasEntry(byRequest(t, r, id), ledger.TypeDenial, ledger.OutcomeDenied)
			if e == nil || e.Mode != "enforcement" || e.Reaches != strings.Join(reaches, ",") {
				t.Errorf("TH's denial of %v = %+v; want mode enforcement, reaches %v", reaches, e, reaches)
			}
		}
		// DE has no safeguarding agreement: its safeguarding request is
		// refused too.
		hd := newHostilePeer(t, de, th, r)
		m := hd.match("phone", 4, func(m *wire.MatchRequest) { m.Mode, m.Reaches = exchange.ModeSafeguarding, exchange.Reaches }, nil)
		if got := hd.sendMatch(m); got != "denied:"+string(exchange.ReasonReachNotAllowed) {
			t.Errorf("DE's safeguarding request: %s; want denied:reach_not_allowed", got)
		}
		if n := len(byType(t, r, ledger.TypeMatchIn)); n != ins {
			t.Errorf("TH admitted %d requests for a reach not allowed", n-ins)
		}
		// GB's own node never sends one: its policy refuses it first, and
		// records that; TH hears nothing of it.
		vreq := req
		vreq.Case, vreq.Reaches = "OP-HAND", []string{reachVictim}
		res, err := q.querier.Query(ctx, ivan, vreq)
		if err != nil {
			t.Fatal(err)
		}
		p := partOf(t, res, "TH")
		if p.Outcome != httpapi.OutcomeDenied || p.Reason != policy.ReasonReachNotAllowed {
			t.Errorf("GB's enforcement query of the victim reach: %s %q; want denied, reach_not_allowed", p.Outcome, p.Reason)
		}
		checkModeEntries(t, q, p.RequestID, "enforcement", "victim", ledger.TypeDenial)
		if es := byRequest(t, r, p.RequestID); len(es) != 0 {
			t.Errorf("TH recorded %d entries of a request GB's policy refused", len(es))
		}
	})

	var sgRes httpapi.QueryResult
	t.Run("safeguarding, approved, hits all three and says which", func(t *testing.T) {
		sreq := req
		sreq.Mode, sreq.Case = "safeguarding", "OP-SG"
		res, err := q.querier.Query(ctx, ivan, sreq)
		if err != nil || res.Status != "pending" {
			t.Fatalf("safeguarding query = %+v, %v; want pending (it needs an approver)", res, err)
		}
		if _, err := q.querier.Approve(ctx, alice, res.ID); err != nil {
			t.Fatal(err)
		}
		sreq.ID, sreq.CaseKey = res.ID, res.CaseKey
		// The approval is for a safeguarding query: not for an enforcement
		// run of the same values.
		enf := sreq
		enf.Mode = "enforcement"
		if _, err := q.querier.Query(ctx, ivan, enf); !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("enforcement run of a safeguarding approval: %v; want a conflict", err)
		}
		if sgRes, err = q.querier.Query(ctx, ivan, sreq); err != nil {
			t.Fatal(err)
		}
		p := partOf(t, sgRes, "TH")
		if p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, []int{0, 1, 2}) ||
			!slices.Equal(p.HitReaches, []string{reachOpen, reachVictim, reachWitness}) {
			t.Fatalf("TH part = %+v; want hits 0, 1, 2 in the open, victim and witness reaches", p)
		}
		if p.Handling != "H3" || !strings.Contains(p.Instruction, "victim liaison") || p.HitCount != 3 {
			t.Errorf("TH part handling %q instruction %q hit count %d; want H3, the rule's instruction, 3", p.Handling, p.Instruction, p.HitCount)
		}
		checkModeEntries(t, q, p.RequestID, "safeguarding", "open,victim,witness", ledger.TypeMatchOut, ledger.TypeMatchResult)
		checkModeEntries(t, th.leader(), p.RequestID, "safeguarding", "open,victim,witness", ledger.TypeMatchIn)
	})

	t.Run("budgets per mode", func(t *testing.T) {
		r := th.leader()
		used, err := r.Audit().BudgetUsed("safeguarding/GB/phone/DAY")
		if err != nil || used != 4 {
			t.Errorf("TH's safeguarding budget used by GB = %d, %v; want 4", used, err)
		}
		for _, reach := range []string{"", "/victim", "/witness"} {
			key := fmt.Sprintf("key/%d/phone%s", r.epochs.currentEpoch(), reach)
			if used, _ := r.Audit().BudgetUsed(key); used < 4 {
				t.Errorf("evaluations of TH's %s = %d; want at least 4", key, used)
			}
		}
		// The safeguarding budget is spent: a second safeguarding query is
		// denied, an enforcement query still runs.
		sreq := req
		sreq.Mode, sreq.Case = "safeguarding", "OP-SG2"
		res, err := q.querier.Query(ctx, ivan, sreq)
		if err == nil && res.Status == "pending" {
			_, err = q.querier.Approve(ctx, alice, res.ID)
			sreq.ID, sreq.CaseKey = res.ID, res.CaseKey
		}
		if err == nil {
			res, err = q.querier.Query(ctx, ivan, sreq)
		}
		if err != nil {
			t.Fatal(err)
		}
		if p := partOf(t, res, "TH"); p.Outcome != httpapi.OutcomeDenied || p.Reason != string(exchange.ReasonPartnerBudget) {
			t.Errorf("second safeguarding query: %s %q; want denied, partner_budget", p.Outcome, p.Reason)
		}
		enf := req
		enf.Case = "OP-ENF2"
		res, err = q.querier.Query(ctx, ivan, enf)
		if p := partOf(t, res, "TH"); err != nil || p.Outcome != httpapi.OutcomeHits {
			t.Errorf("enforcement query once the safeguarding budget is spent: %+v, %v; want hits", p, err)
		}
	})

	t.Run("sync withholds the victim and witness sets from a partner without safeguarding", func(t *testing.T) {
		for _, reach := range []string{reachVictim, reachWitness} {
			_, _, _, _, err := de.leader().partnerSets.partnerSet(ctx, "TH", "phone", reach)
			var d *exchange.DeniedError
			if !errors.As(err, &d) || d.Reason != exchange.ReasonReachNotAllowed {
				t.Errorf("DE syncs TH's %s set: %v; want reach_not_allowed", reach, err)
			}
			s, _, _, _, err := q.partnerSets.partnerSet(ctx, "TH", "phone", reach)
			if err != nil || s == nil || s.Reach() != reach {
				t.Errorf("GB syncs TH's %s set: %v; want its copy", reach, err)
			}
		}
		if s, _, _, _, err := de.leader().partnerSets.partnerSet(ctx, "TH", "phone", reachOpen); err != nil || s == nil {
			t.Errorf("DE syncs TH's open set: %v; want its copy", err)
		}
		refused := 0
		for _, e := range byType(t, th.leader(), ledger.TypeDenial) {
			if e.Partner == "DE" && strings.Contains(e.Body.Purpose, "reach_not_allowed") && (e.Reaches == reachVictim || e.Reaches == reachWitness) {
				refused++
			}
		}
		if refused < 2 {
			t.Errorf("TH recorded %d refused syncs of its victim and witness sets to DE; want both", refused)
		}
	})
}

// checkModeEntries checks that n's entries of request id of the given
// types record mode and reaches, and that none of them says more.
func checkModeEntries(t *testing.T, n *Node, id, mode, reaches string, types ...ledger.Type) {
	t.Helper()
	es := byRequest(t, n, id)
	for _, typ := range types {
		found := false
		for _, e := range es {
			if e.Type != typ {
				continue
			}
			found = true
			if e.Mode != mode || e.Reaches != reaches {
				t.Errorf("%s %s entry of %s: mode %q reaches %q; want %q %q", n.Agency(), typ, id, e.Mode, e.Reaches, mode, reaches)
			}
		}
		if !found {
			t.Errorf("%s has no %s entry of %s", n.Agency(), typ, id)
		}
	}
}

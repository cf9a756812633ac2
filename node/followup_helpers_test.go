package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
	"github.com/xborder/xborder/psi"
)

// The policy of the follow-up tests: partners match, sync and follow up;
// the liaison answers.
const followupPolicy = `
@id("gb") permit (principal == Agency::"GB", action in [Action::"match", Action::"sync", Action::"followup"], resource is Kind);
@id("th") permit (principal == Agency::"TH", action in [Action::"match", Action::"sync", Action::"followup"], resource is Kind);
@id("de") permit (principal == Agency::"DE", action in [Action::"match", Action::"sync", Action::"followup"], resource is Kind);
@id("investigators") permit (principal in Role::"investigator", action in [Action::"match", Action::"sync", Action::"followup"], resource is Kind);
@id("stewards") permit (principal in Role::"steward", action == Action::"import", resource is Kind);
@id("liaisons") permit (principal in Role::"liaison", action == Action::"answer_followup", resource is Kind);
@id("auditors") permit (principal in Role::"auditor", action in [Action::"read_ledger", Action::"export"], resource == Node::"local");
`

// followupLimits: GB's email follow-ups are answered on their own, its
// phone follow-ups by the liaison; email has a safeguarding rule (victim
// and witness reaches). RULE is replaced by GB's follow-up rule.
const followupLimits = `version: 1
offences: [thb]
retention: 30d
kinds:
  phone: {daily_cap: 1000000, key_evaluations: 10000000}
  email: {daily_cap: 1000000, key_evaluations: 10000000}
partners:
  GB:
    phone: {max_query: 4096, daily_budget: 1000000, disclosure: hits, handling: H2}
    email: {max_query: 4096, daily_budget: 1000000, disclosure: hits, handling: H2,
            safeguarding: {reaches: [open, victim, witness], daily_budget: 100000, handling: H3, instruction: "call the victim liaison first"}}
  TH:
    phone: {max_query: 4096, daily_budget: 1000000, disclosure: hits, handling: H2}
    email: {max_query: 4096, daily_budget: 1000000, disclosure: hits, handling: H2,
            safeguarding: {reaches: [open, victim, witness], daily_budget: 100000, handling: H3, instruction: "call the victim liaison first"}}
  DE:
    phone: {max_query: 4096, daily_budget: 1000000, disclosure: hits, handling: H2}
followups:
  GB: RULE
`

var (
	liaison = httpapi.User{Name: "lia", Role: "liaison"}
)

// gbRule is GB's follow-up rule of the tests.
const gbRule = "{window: 30d, auto_answer: [email]}"

// applyFollowupPolicy puts the follow-up policy in force at a with rule
// as GB's follow-up rule.
func applyFollowupPolicy(t *testing.T, a *agency, rule string) {
	t.Helper()
	first := a.leader()
	v, err := first.policy.ApplyPolicy(context.Background(), "user:admin", policy.Files{PolicyName: "policy.cedar",
		Policy: []byte(followupPolicy + matchAdmins), LimitsName: "limits.yaml",
		Limits: []byte(strings.Replace(followupLimits, "RULE", rule, 1))}, first.users.policyManagers)
	if err != nil {
		t.Fatalf("%s ApplyPolicy: %v", a.cc, err)
	}
	for _, n := range a.running() {
		until(t, a.cc+" policy in force", func() bool { return n.Policy().Version() == v })
	}
}

// holdRows imports rows of kind (with references, contacts, handling
// codes and classes) at a and waits until its sets of reach are built.
func holdRows(t *testing.T, a *agency, kind, region, reach string, rows []httpapi.Row) {
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
	res, err := n.holdings.CommitImport(ctx, stew, imp.ID, httpapi.CommitImport{})
	if err != nil {
		t.Fatalf("%s CommitImport: %v", a.cc, err)
	}
	for _, r := range a.running() {
		poll(t, a.cc+" set built", 5*time.Minute, func() bool {
			_, v, ok := r.sets.responder(kind, r.epochs.currentEpoch(), reach)
			return ok && v >= uint64(res.Version)
		})
	}
}

// matchTags has q ask o about values (canonical) over the match protocol,
// as q's querier does, and returns the request ID, the epoch and the hits
// with their tags under each reach asked.
func matchTags(t *testing.T, q, o *agency, kind, mode string, reaches []string, values []string) ([16]byte, uint64, map[string][]psi.HitTag) {
	t.Helper()
	ctx := context.Background()
	n := q.leader()
	keys := map[string]*psi.PublicKey{}
	sets := map[string]*psi.Set{}
	var epoch uint64
	for _, reach := range reaches {
		poll(t, q.cc+" holds "+o.cc+"'s "+kind+" "+reach+" set", 5*time.Minute, func() bool {
			s, k, e, _, err := n.partnerSets.partnerSet(ctx, o.cc, kind, reach)
			if err != nil || s == nil {
				return false
			}
			sets[reach], keys[reach], epoch = s, k, e
			return true
		})
	}
	k, _ := ident.ParseKind(kind)
	inputs := make([][]byte, len(values))
	for i, v := range values {
		inputs[i] = ident.Input(k, v)
	}
	pq, err := psi.NewQuerier(psi.QuerierConfig{Kind: kind, Epoch: epoch, Dummy: ident.DummyInput})
	if err != nil {
		t.Fatal(err)
	}
	qy, evreq, err := pq.Blind(inputs, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	c := n.cards.Pins()[o.cc]
	ans, err := n.xcl.Match(ctx, n.host, exchange.PeerID(c.Replicas[0].PeerID), exchange.Query{ID: id, Responder: o.cc, Kind: kind,
		Epoch: epoch, Mode: mode, Reaches: reaches, Keys: keys, CaseRef: "OP-FU", LegalBasis: "Prüm II art. 6", Offence: "thb",
		Purpose: "find the case officer", Eval: evreq})
	if err != nil {
		t.Fatalf("%s matches at %s: %v", q.cc, o.cc, err)
	}
	out := map[string][]psi.HitTag{}
	for _, r := range ans.Results {
		if out[r.Reach], err = qy.HitTags(o.cc, keys[r.Reach], r.Evaluation, sets[r.Reach]); err != nil {
			t.Fatalf("HitTags(%s): %v", r.Reach, err)
		}
	}
	return id, epoch, out
}

// followupTags turns hits into the tags of a follow-up.
func followupTagsOf(reach string, hits []psi.HitTag) []exchange.FollowupTag {
	out := make([]exchange.FollowupTag, len(hits))
	for i, h := range hits {
		out[i] = exchange.FollowupTag{Reach: reach, Tag: h.Tag}
	}
	return out
}

// sendFollowup sends f from q's leader to o's first replica.
func sendFollowup(q, o *agency, f exchange.Followup) (*exchange.FollowupAck, error) {
	n := q.leader()
	c := n.cards.Pins()[o.cc]
	return n.xcl.Followup(context.Background(), n.host, exchange.PeerID(c.Replicas[0].PeerID), f)
}

// pollFollowup polls o for the state of follow-up f.
func pollFollowup(t *testing.T, q, o *agency, f exchange.Followup) *exchange.FollowupStatus {
	t.Helper()
	n := q.leader()
	c := n.cards.Pins()[o.cc]
	st, err := n.xcl.PollFollowup(context.Background(), n.host, exchange.PeerID(c.Replicas[0].PeerID),
		exchange.FollowupPoll{Owner: o.cc, ID: f.ID, RequestID: f.RequestID, Tags: len(f.Tags)})
	if err != nil {
		t.Fatalf("PollFollowup: %v", err)
	}
	return st
}

func newFollowup(owner string, rid [16]byte, kind string, epoch uint64, mode string, tags []exchange.FollowupTag) exchange.Followup {
	f := exchange.Followup{Owner: owner, RequestID: rid, Kind: kind, Epoch: epoch, Mode: mode, Tags: tags,
		Basis: "2006/960/JHA art. 4", Purpose: "reach the case officer", Time: time.Now()}
	_, _ = rand.Read(f.ID[:])
	return f
}

// deniedWith reports whether err is a denial for reason r.
func deniedWith(err error, r exchange.Reason) bool {
	var d *exchange.DeniedError
	return errors.As(err, &d) && d.Reason == r
}

// followupEntries returns a's entries carrying follow-up ID id.
func followupEntries(t *testing.T, n *Node, id [16]byte) []ledger.Entry {
	t.Helper()
	es, err := n.Audit().Entries(context.Background(), ledger.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Entry
	for _, e := range es {
		if e.FollowupID == hex.EncodeToString(id[:]) {
			out = append(out, e)
		}
	}
	return out
}

// gaugeValue reads the gauge name with label partner from n's metrics.
func gaugeValue(t *testing.T, n *Node, name, partner string) float64 {
	t.Helper()
	mfs, err := n.met.reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partner" && l.GetValue() == partner {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{partner=%q}", name, partner)
	return 0
}

// headerStrings are the string fields of an entry's header.
func headerStrings(h *ledger.Header) []string {
	return []string{h.RequestID, h.FollowupID, h.Agency, h.Partner, h.Kind, h.PolicyVersion, h.Handling, h.Replica, h.Mode, h.Reaches,
		string(h.Digest[:]), string(h.RequestSigDigest[:])}
}

func bodyStringsOf(b *ledger.Body) []string {
	return []string{b.Actor, b.Approver, b.Purpose, b.LegalBasis, b.Offence, b.CaseRef}
}

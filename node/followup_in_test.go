package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
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
// and witness reaches). WINDOW is replaced.
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
  GB: {window: WINDOW, auto_answer: [email]}
`

var (
	liaison = httpapi.User{Name: "lia", Role: "liaison"}
)

// applyFollowupPolicy puts the follow-up policy in force at a with the
// given window for GB.
func applyFollowupPolicy(t *testing.T, a *agency, window string) {
	t.Helper()
	first := a.leader()
	v, err := first.policy.ApplyPolicy(context.Background(), "user:admin", policy.Files{PolicyName: "policy.cedar",
		Policy: []byte(followupPolicy + matchAdmins), LimitsName: "limits.yaml",
		Limits: []byte(strings.Replace(followupLimits, "WINDOW", window, 1))}, first.users.policyManagers)
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

// TestFollowupOwner: two real agencies (and a third); GB follows up hits
// of a match at TH. A tag maps to exactly the record hit; the liaison
// sees reference, contact and handling and answers; GB's poll gets the
// signed answer; a follow-up of a request TH never answered, one from
// another agency, a replay and one after the window are refused and
// recorded with their follow-up ID; a retry of the same bytes is not;
// GB's email follow-ups are answered on their own, never a victim's; and
// nothing of the tags is in TH's files, logs or ledger afterwards.
func TestFollowupOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("three agencies")
	}
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb, th, de := startAgency(t, "GB", 1, logs), startAgency(t, "TH", 1, logs), startAgency(t, "DE", 1, logs)
	for _, a := range []*agency{gb, th, de} {
		applyFollowupPolicy(t, a, "30d")
	}
	gb.pin(th)
	th.pin(gb)
	de.pin(th)
	th.pin(de)
	phones := canon(t, "phone", "TH", "081 234 0001", "081 234 0002", "081 234 0003", "081 234 9999")
	holdRows(t, th, "phone", "TH", reachOpen, []httpapi.Row{
		{Line: 1, Value: phones[0], Ref: "TH-CASE-1", Contact: "AHTD desk 1", Handling: "H2"},
		{Line: 2, Value: phones[1], Ref: "TH-CASE-2", Contact: "AHTD desk 2", Handling: "H3"},
		{Line: 3, Value: phones[2], Ref: "TH-CASE-3", Contact: "AHTD desk 3", Handling: "H1"},
	})
	mails := canon(t, "email", "", "open@example.org", "victim@example.org")
	holdRows(t, th, "email", "", reachOpen, []httpapi.Row{{Line: 1, Value: mails[0], Ref: "TH-M-1", Contact: "cyber desk", Handling: "H1"}})
	holdRows(t, th, "email", "", reachVictim, []httpapi.Row{{Line: 1, Value: mails[1], Ref: "TH-V-1", Contact: "victim liaison", Handling: "H1", Class: "victim"}})
	ownerTH := th.leader()

	// GB asks about two held numbers and one that is not held.
	rid, epoch, hits := matchTags(t, gb, th, "phone", exchange.ModeEnforcement, []string{reachOpen}, []string{phones[1], phones[3], phones[0]})
	open := hits[reachOpen]
	if len(open) != 2 || open[0].Index != 0 || open[1].Index != 2 {
		t.Fatalf("hits = %+v; want inputs 0 and 2", open)
	}
	var allTags [][]byte
	f := newFollowup("TH", rid, "phone", epoch, exchange.ModeEnforcement, followupTagsOf(reachOpen, open))
	for _, tg := range f.Tags {
		allTags = append(allTags, slices.Clone(tg.Tag[:]))
	}
	ack, err := sendFollowup(gb, th, f)
	if err != nil {
		t.Fatalf("Followup: %v", err)
	}
	if d := time.Until(ack.Deadline); d < 7*24*time.Hour-time.Hour || d > 7*24*time.Hour {
		t.Errorf("deadline in %s; want 7 days (standard)", d)
	}

	t.Run("tag maps to exactly the record hit", func(t *testing.T) {
		items, err := ownerTH.fin.inbox(liaison)
		if err != nil || len(items) != 1 {
			t.Fatalf("inbox = %d items, %v; want 1", len(items), err)
		}
		it := items[0]
		want := [][2]string{{"TH-CASE-2", "AHTD desk 2"}, {"TH-CASE-1", "AHTD desk 1"}}
		if it.ID != hex.EncodeToString(f.ID[:]) || it.Partner != "GB" || it.State != followupOpen || len(it.Hits) != 2 {
			t.Fatalf("inbox item = %+v", it)
		}
		for i, h := range it.Hits {
			if len(h.Records) != 1 || h.Records[0].Reference != want[i][0] || h.Records[0].Contact != want[i][1] || h.Records[0].Class != "unknown" {
				t.Errorf("hit %d records = %+v; want exactly %v", i+1, h.Records, want[i])
			}
		}
		if _, err := ownerTH.fin.inbox(ivan); !errors.Is(err, httpapi.ErrForbidden) {
			t.Errorf("investigator's inbox: %v; want ErrForbidden", err)
		}
		es := followupEntries(t, ownerTH, f.ID)
		if len(es) != 1 || es[0].Type != ledger.TypeFollowupIn || es[0].Count != 2 || es[0].HitCount != 2 || es[0].Partner != "GB" ||
			es[0].RequestID != hex.EncodeToString(rid[:]) || es[0].Body.LegalBasis != f.Basis {
			t.Errorf("TH's entries of the follow-up = %+v; want one followup_in of 2 tags, 2 matched", es)
		}
		if st := pollFollowup(t, gb, th, f); st.Answer != nil || !st.Deadline.Equal(ack.Deadline) {
			t.Errorf("poll before the answer = %+v; want the deadline and no answer", st)
		}
	})

	t.Run("retry and replay", func(t *testing.T) {
		// The same signed bytes at another replica (the server of the
		// replica that accepted them refuses a copy itself): the deadline
		// given, nothing recorded.
		es := followupEntries(t, ownerTH, f.ID)
		in := &exchange.InboundFollowup{Peer: exchange.Peer{Agency: "GB"}, ID: f.ID, RequestID: rid, Time: f.Time, Querier: "GB",
			Owner: "TH", Kind: "phone", Epoch: epoch, Mode: exchange.ModeEnforcement, Basis: f.Basis, Purpose: f.Purpose,
			Tags: f.Tags, SignatureSHA256: es[0].RequestSigDigest}
		if d, err := ownerTH.fin.Accept(ctx, in); err != nil || !d.Equal(ack.Deadline) {
			t.Errorf("Accept(the same signed follow-up again) = %v, %v; want the deadline %v", d, err, ack.Deadline)
		}
		if _, err := sendFollowup(gb, th, f); !deniedWith(err, exchange.ReasonReplay) {
			t.Errorf("a copy to the replica that accepted it: %v; want replay", err)
		}
		other := f
		other.Purpose = "another purpose under the same ID"
		if _, err := sendFollowup(gb, th, other); !deniedWith(err, exchange.ReasonReplay) {
			t.Errorf("same ID, other signature: %v; want replay", err)
		}
		es = followupEntries(t, ownerTH, f.ID)
		if len(es) != 3 || es[0].Type != ledger.TypeFollowupIn || es[1].Outcome != ledger.OutcomeDeniedReplay || es[2].Outcome != ledger.OutcomeDeniedReplay {
			t.Errorf("entries = %+v; want followup_in then two replay denials", es)
		}
	})

	t.Run("liaison answers", func(t *testing.T) {
		it, err := ownerTH.fin.answer(ctx, liaison, hex.EncodeToString(f.ID[:]), httpapi.AnswerFollowup{Share: []string{"reference", "contact"},
			Handling: "H2", Message: "call before 18:00"})
		if err != nil {
			t.Fatalf("answer: %v", err)
		}
		if it.State != followupShared || it.Answer == nil || len(it.Answer.Shared) != 2 || it.Actor != "user:lia" {
			t.Fatalf("answered item = %+v", it)
		}
		if _, err := ownerTH.fin.answer(ctx, liaison, hex.EncodeToString(f.ID[:]), httpapi.AnswerFollowup{Refuse: true, Reason: "no"}); !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("second answer: %v; want ErrConflict", err)
		}
		if _, err := ownerTH.fin.answer(ctx, ivan, hex.EncodeToString(f.ID[:]), httpapi.AnswerFollowup{Refuse: true, Reason: "no"}); !errors.Is(err, httpapi.ErrForbidden) {
			t.Errorf("investigator answers: %v; want ErrForbidden", err)
		}
		st := pollFollowup(t, gb, th, f)
		a := st.Answer
		if a == nil || a.Refused || a.Handling != "H2" || a.Message != "call before 18:00" || len(a.Shared) != 2 ||
			a.Shared[0] != (exchange.SharedRecord{Hit: 1, Reference: "TH-CASE-2", Contact: "AHTD desk 2", Handling: "H3"}) ||
			a.Shared[1] != (exchange.SharedRecord{Hit: 2, Reference: "TH-CASE-1", Contact: "AHTD desk 1"}) {
			t.Fatalf("GB's poll = %+v; want both records shared, hit 1 under H3", a)
		}
		es := followupEntries(t, ownerTH, f.ID)
		last := es[len(es)-1]
		if last.Type != ledger.TypeFollowupAnswer || last.Outcome != ledger.OutcomeOK || last.Count != 2 || last.Handling != "H2" ||
			last.Digest != ledger.Digest(sha256.Sum256(st.Signed)) || last.Body.Actor != "user:lia" {
			t.Errorf("followup_answer entry = %+v; want shared 2 under H2 with the answer's digest", last)
		}
	})

	t.Run("refused and recorded", func(t *testing.T) {
		var never [16]byte
		_, _ = rand.Read(never[:])
		unknown := newFollowup("TH", never, "phone", epoch, exchange.ModeEnforcement, f.Tags)
		if _, err := sendFollowup(gb, th, unknown); !deniedWith(err, exchange.ReasonUnknownRequest) {
			t.Errorf("request TH never answered: %v; want unknown_request", err)
		}
		otherKind := newFollowup("TH", rid, "email", epoch, exchange.ModeEnforcement, f.Tags)
		if _, err := sendFollowup(gb, th, otherKind); !deniedWith(err, exchange.ReasonUnknownRequest) {
			t.Errorf("request of another kind: %v; want unknown_request", err)
		}
		stolen := newFollowup("TH", rid, "phone", epoch, exchange.ModeEnforcement, f.Tags)
		if _, err := sendFollowup(de, th, stolen); !deniedWith(err, exchange.ReasonUnknownRequest) {
			t.Errorf("DE follows up GB's request: %v; want unknown_request", err)
		}
		for _, x := range []exchange.Followup{unknown, otherKind, stolen} {
			es := followupEntries(t, ownerTH, x.ID)
			if len(es) != 1 || es[0].Type != ledger.TypeDenial || es[0].Outcome != ledger.OutcomeDenied {
				t.Errorf("entries of refused follow-up %x = %+v; want one denial", x.ID, es)
			}
		}
	})

	t.Run("auto-answer, never for a victim", func(t *testing.T) {
		mrid, mepoch, mhits := matchTags(t, gb, th, "email", exchange.ModeEnforcement, []string{reachOpen}, mails)
		mf := newFollowup("TH", mrid, "email", mepoch, exchange.ModeEnforcement, followupTagsOf(reachOpen, mhits[reachOpen]))
		if len(mf.Tags) != 1 {
			t.Fatalf("email hits = %+v; want the open one only", mhits)
		}
		if _, err := sendFollowup(gb, th, mf); err != nil {
			t.Fatalf("Followup(email): %v", err)
		}
		st := pollFollowup(t, gb, th, mf)
		if st.Answer == nil || len(st.Answer.Shared) != 1 || st.Answer.Shared[0].Reference != "TH-M-1" || st.Answer.Handling != "H1" {
			t.Errorf("auto-answer = %+v; want TH-M-1 shared under H1", st.Answer)

		}
		if es := followupEntries(t, ownerTH, mf.ID); len(es) != 2 || es[1].Type != ledger.TypeFollowupAnswer || es[1].Body.Actor != autoActor {
			t.Errorf("entries = %+v; want followup_in and an auto followup_answer", es)
		}
		srid, sepoch, shits := matchTags(t, gb, th, "email", exchange.ModeSafeguarding, []string{reachOpen, reachVictim}, mails)
		tags := append(followupTagsOf(reachOpen, shits[reachOpen]), followupTagsOf(reachVictim, shits[reachVictim])...)
		sf := newFollowup("TH", srid, "email", sepoch, exchange.ModeSafeguarding, tags)
		if len(sf.Tags) != 2 {
			t.Fatalf("safeguarding hits = %+v; want one open and one victim", shits)
		}
		for _, tg := range append(tags, mf.Tags...) {
			allTags = append(allTags, slices.Clone(tg.Tag[:]))
		}
		if _, err := sendFollowup(gb, th, sf); err != nil {
			t.Fatalf("Followup(victim): %v", err)
		}
		if st := pollFollowup(t, gb, th, sf); st.Answer != nil {
			t.Errorf("a follow-up naming a victim hit was answered on its own: %+v", st.Answer)
		}
		items, err := ownerTH.fin.inbox(liaison)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(items, func(it httpapi.FollowupInboxItem) bool { return it.ID == hex.EncodeToString(sf.ID[:]) })
		if i < 0 || items[i].State != followupOpen || items[i].Hits[1].Records[0].Class != "victim" || items[i].Hits[1].Records[0].Reference != "TH-V-1" {
			t.Errorf("victim follow-up in the inbox = %+v; want open, hit 2 the victim's record", items)
		}
		// The client sends no victim hit in enforcement mode (the hostile
		// test sends one by hand: reach_not_allowed).
		victimOnly := newFollowup("TH", srid, "email", sepoch, exchange.ModeEnforcement, followupTagsOf(reachVictim, shits[reachVictim]))
		if _, err := sendFollowup(gb, th, victimOnly); err == nil || len(followupEntries(t, ownerTH, victimOnly.ID)) != 0 {
			t.Errorf("victim hit in enforcement mode: %v; want it refused before it is sent", err)
		}
	})

	t.Run("after the window", func(t *testing.T) {
		applyFollowupPolicy(t, th, "1ms")
		late := newFollowup("TH", rid, "phone", epoch, exchange.ModeEnforcement, f.Tags)
		if _, err := sendFollowup(gb, th, late); !deniedWith(err, exchange.ReasonWindowClosed) {
			t.Errorf("follow-up after the window: %v; want window_closed", err)
		}
		if es := followupEntries(t, ownerTH, late.ID); len(es) != 1 || es[0].Type != ledger.TypeDenial {
			t.Errorf("entries = %+v; want one denial", es)
		}
	})

	t.Run("no tag in TH's files, logs or ledger", func(t *testing.T) {
		var needles [][]byte
		for _, tg := range allTags {
			needles = append(needles, tg, []byte(hex.EncodeToString(tg)))
		}
		es, err := ownerTH.Audit().Entries(ctx, ledger.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			for _, s := range append(headerStrings(&e.Header), bodyStringsOf(&e.Body)...) {
				for _, n := range needles {
					if strings.Contains(s, string(n)) {
						t.Errorf("entry %d holds a tag", e.Index)
					}
				}
			}
		}
		for _, n := range needles {
			if strings.Contains(string(logs.Bytes()), string(n)) {
				t.Errorf("a tag is in the logs")
			}
		}
		th.stop(0)
		key, err := readStorageKey(filepath.Join(th.dirs[0], StorageKeyFile), "")
		if err != nil {
			t.Fatal(err)
		}
		// The last needle is a contact TH holds: the scan must find it
		// (decrypted, never raw), or it proves nothing.
		control := len(needles)
		needles = append(needles, []byte("AHTD desk 1"))
		found, err := ledger.FindOnDisk(th.dirs[0], key, needles)
		if err != nil {
			t.Fatal(err)
		}
		sawControl := false
		for _, x := range found {
			switch {
			case x.Needle == control && x.How != "raw":
				sawControl = true
			case x.Needle == control:
				t.Errorf("a contact in plaintext on TH's disk: %+v", x)
			default:
				t.Errorf("a tag on TH's disk: %+v", x)
			}
		}
		if !sawControl {
			t.Errorf("the scan did not find the contact TH holds: it reads nothing")
		}
	})
}

// headerStrings are the string fields of an entry's header.
func headerStrings(h *ledger.Header) []string {
	return []string{h.RequestID, h.FollowupID, h.Agency, h.Partner, h.Kind, h.PolicyVersion, h.Handling, h.Replica, h.Mode, h.Reaches,
		string(h.Digest[:]), string(h.RequestSigDigest[:])}
}

func bodyStringsOf(b *ledger.Body) []string {
	return []string{b.Actor, b.Approver, b.Purpose, b.LegalBasis, b.Offence, b.CaseRef}
}

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
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

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
		applyFollowupPolicy(t, a, gbRule)
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
		// The same through the API, with a liaison's and an investigator's tokens.
		lt, err := ownerTH.users.AddUser(ctx, "user:admin", "tina", "liaison")
		if err != nil {
			t.Fatalf("AddUser(liaison): %v", err)
		}
		it2, err := (&httpapi.Client{BaseURL: ownerTH.APIURL(), Token: lt.Token}).FollowupInbox(ctx)
		if err != nil || len(it2) != 1 || it2[0].ID != it.ID || it2[0].Hits[0].Records[0].Reference != "TH-CASE-2" {
			t.Errorf("GET /v1/followups/inbox as the liaison = %+v, %v", it2, err)
		}
		vt, err := ownerTH.users.AddUser(ctx, "user:admin", "vic", "investigator")
		if err != nil {
			t.Fatalf("AddUser(investigator): %v", err)
		}
		if _, err := (&httpapi.Client{BaseURL: ownerTH.APIURL(), Token: vt.Token}).FollowupInbox(ctx); !errors.Is(err, httpapi.ErrForbidden) {
			t.Errorf("GET /v1/followups/inbox as an investigator: %v; want 403", err)
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
		applyFollowupPolicy(t, th, "{window: 1ms}")
		late := newFollowup("TH", rid, "phone", epoch, exchange.ModeEnforcement, f.Tags)
		if _, err := sendFollowup(gb, th, late); !deniedWith(err, exchange.ReasonWindowClosed) {
			t.Errorf("follow-up after the window: %v; want window_closed", err)
		}
		if es := followupEntries(t, ownerTH, late.ID); len(es) != 1 || es[0].Type != ledger.TypeDenial {
			t.Errorf("entries = %+v; want one denial", es)
		}
	})

	t.Run("overdue", func(t *testing.T) {
		applyFollowupPolicy(t, th, "{deadline: 1ms, urgent_deadline: 1ms}")
		od := newFollowup("TH", rid, "phone", epoch, exchange.ModeEnforcement, f.Tags)
		od.Urgent = true
		if _, err := sendFollowup(gb, th, od); err != nil {
			t.Fatalf("Followup: %v", err)
		}
		// A policy commit takes longer than the 1 ms deadline: the
		// follow-up is overdue once the default rule is back in force.
		applyFollowupPolicy(t, th, gbRule)
		items, err := ownerTH.fin.inbox(liaison)
		if err != nil || len(items) == 0 || items[0].ID != hex.EncodeToString(od.ID[:]) || !items[0].Overdue || !items[0].Urgent {
			t.Errorf("inbox = %+v, %v; want the overdue follow-up first", items, err)
		}
		got := gaugeValue(t, ownerTH, "xborder_followups_overdue", "GB")
		if got != 1 {
			t.Errorf("xborder_followups_overdue{partner=GB} = %v; want 1 (the victim's follow-up is open but not due)", got)
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

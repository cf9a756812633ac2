package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// entriesOfFollowup returns a's entries of type typ that carry follow-up ID
// id.
func entriesOfFollowup(t *testing.T, n *Node, typ ledger.Type, id string) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	for _, e := range byType(t, n, typ) {
		if e.FollowupID == id {
			out = append(out, e)
		}
	}
	return out
}

// TestFollowupTwoAgencies is step 2 end to end between two real
// agencies: GB follows up two of its hits at TH, one follow-up each; TH's
// liaison sees each hit's record (reference, contact, handling) by
// deadline, shares one under H2 and refuses the other; GB's poll brings
// both answers, verified, which GB's investigator and auditor read and
// another investigator may not; both ledgers hold the four entries of
// each follow-up under its ID and the same answer digest; a follow-up of
// a request TH never answered is refused and recorded there. Nothing of
// the query's identifiers crosses the wire or reaches either agency's
// stores, logs or ledger; nothing of the tags reaches TH's.
func TestFollowupTwoAgencies(t *testing.T) {
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
	held := canon(t, "phone", "GB", "+44 7700 900301", "+44 7700 900302")
	rows := []httpapi.Row{
		{Line: 1, Value: held[0], Ref: "TH-CASE-301", Contact: "THB desk, Bangkok", Handling: "H2"},
		{Line: 2, Value: held[1], Ref: "TH-CASE-302", Contact: "Port desk, Laem Chabang", Handling: "H3"},
	}
	for i, v := range fillers(41000, 20) {
		rows = append(rows, httpapi.Row{Line: 3 + i, Value: v})
	}
	th.holdRows("phone", "GB", rows)
	gb.pin(th)
	th.pin(gb)
	q, r := gb.leader(), th.leader()
	wire := &recorder{}
	r.host.Handle(exchange.ProtoFollowup, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		r.fin.srv.Handle(ctx, from, recStream{st, wire})
	})

	values := canon(t, "phone", "GB", "07700 900301", "07700 900399", "07700 900302")
	res, err := q.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "phone", Case: "OP-FU", Basis: "Art. 10", Offence: "thb",
		Purpose: "p", Partners: []string{"TH"}, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	p := partOf(t, res, "TH")
	if !slices.Equal(p.Hits, []int{0, 2}) || !slices.Equal(p.HitNumbers, []int{1, 2}) {
		t.Fatalf("TH part: hits %v numbers %v; want hits [0 2] numbered [1 2]", p.Hits, p.HitNumbers)
	}
	k, err := q.followOut.cfg.Hits.lookup(p.RequestID, "TH")
	if err != nil {
		t.Fatal(err)
	}

	// Two follow-ups: hit #1 standard, hit #2 urgent.
	base := httpapi.FollowupRequest{Partner: "TH", Basis: "MLA 2024/17", Purpose: "identify the case officer"}
	std, urg := base, base
	std.Hits, urg.Hits, urg.Urgent = []int{1}, []int{2}, true
	f1, err := q.followOut.Send(ctx, ivan, res.ID, std)
	if err != nil || f1.Status != httpapi.FollowupOpen || f1.OutIndex == nil {
		t.Fatalf("follow-up of hit #1 = %+v, %v; want open and recorded", f1, err)
	}
	f2, err := q.followOut.Send(ctx, ivan, p.RequestID, urg)
	if err != nil || f2.Status != httpapi.FollowupOpen {
		t.Fatalf("urgent follow-up of hit #2 = %+v, %v; want open", f2, err)
	}
	if d := time.Until(f1.Deadline); d < 6*24*time.Hour || d > 7*24*time.Hour {
		t.Errorf("standard deadline in %v; want 7 days", d)
	}
	if d := time.Until(f2.Deadline); d < 7*time.Hour || d > 8*time.Hour {
		t.Errorf("urgent deadline in %v; want 8 hours", d)
	}

	// TH's liaison: both, the urgent one first, each hit with its record.
	liaison := httpapi.User{Name: "lia", Role: "liaison"}
	inbox, err := r.fin.inbox(liaison)
	if err != nil {
		t.Fatal(err)
	}
	if len(inbox) != 2 || inbox[0].ID != f2.ID || inbox[1].ID != f1.ID {
		t.Fatalf("TH's inbox = %+v; want %s (urgent) then %s", inbox, f2.ID, f1.ID)
	}
	for i, want := range []string{"TH-CASE-302", "TH-CASE-301"} {
		it := inbox[i]
		if len(it.Hits) != 1 || len(it.Hits[0].Records) != 1 || it.Hits[0].Records[0].Reference != want || it.Partner != "GB" || it.RequestID != p.RequestID {
			t.Errorf("inbox item %d = %+v; want GB's follow-up of request %s naming exactly record %s", i, it, p.RequestID, want)
		}
	}
	if _, err := r.fin.answer(ctx, liaison, f1.ID, httpapi.AnswerFollowup{Share: []string{"reference", "contact"}, Handling: "H2",
		Message: "call the desk before 18:00"}); err != nil {
		t.Fatalf("share %s: %v", f1.ID, err)
	}
	if _, err := r.fin.answer(ctx, liaison, f2.ID, httpapi.AnswerFollowup{Refuse: true, Reason: "the case is sealed by a court"}); err != nil {
		t.Fatalf("refuse %s: %v", f2.ID, err)
	}

	// GB: the poll loop brings both answers.
	until(t, "GB has both answers", func() bool {
		q.followOut.pass(ctx)
		recs, err := q.followOut.List(ivan)
		n := 0
		for _, rec := range recs {
			if rec.Status == httpapi.FollowupAnswered && rec.ResultIndex != nil {
				n++
			}
		}
		return err == nil && n == 2
	})
	a1, err := q.followOut.Record(ctx, ivan, f1.ID, false)
	if err != nil || a1.Answer == nil || a1.Answer.Outcome != "shared" || a1.Answer.Handling != "H2" || len(a1.Answer.Shared) != 1 ||
		a1.Answer.Shared[0] != (httpapi.FollowupSharedItem{Hit: 1, Reference: "TH-CASE-301", Contact: "THB desk, Bangkok"}) ||
		a1.Answer.Message != "call the desk before 18:00" {
		t.Errorf("GB's answer to hit #1 = %+v (%+v), %v; want TH-CASE-301 and its desk shared under H2", a1, a1.Answer, err)
	}
	a2, err := q.followOut.Record(ctx, ivan, f2.ID, true)
	if err != nil || a2.Answer == nil || a2.Answer.Outcome != "refused" || a2.Answer.Reason != "the case is sealed by a court" || len(a2.Answer.Shared) != 0 {
		t.Errorf("GB's answer to hit #2 = %+v, %v; want refused with TH's reason", a2, err)
	}
	if _, err := q.followOut.Record(ctx, httpapi.User{Name: "ivy", Role: "investigator"}, f1.ID, true); !errors.Is(err, httpapi.ErrForbidden) {
		t.Errorf("another investigator reads the answer: %v; want ErrForbidden", err)
	}
	if rec, err := q.followOut.Record(ctx, httpapi.User{Name: "audrey", Role: "auditor"}, f1.ID, false); err != nil || rec.Answer == nil {
		t.Errorf("GB's auditor reads the answer: %+v, %v; want it", rec, err)
	}
	if l, err := q.followOut.List(httpapi.User{Name: "ivy", Role: "investigator"}); err != nil || len(l) != 0 {
		t.Errorf("another investigator lists %d follow-ups, %v; want none", len(l), err)
	}

	// Both ledgers, under each follow-up's ID.
	for _, f := range []struct {
		id      string
		outcome ledger.Outcome
		shared  uint64
	}{{f1.ID, ledger.OutcomeOK, 1}, {f2.ID, ledger.OutcomeDenied, 0}} {
		out := entriesOfFollowup(t, q, ledger.TypeFollowupOut, f.id)
		result := entriesOfFollowup(t, q, ledger.TypeFollowupResult, f.id)
		in := entriesOfFollowup(t, r, ledger.TypeFollowupIn, f.id)
		answer := entriesOfFollowup(t, r, ledger.TypeFollowupAnswer, f.id)
		if len(out) != 1 || len(result) != 1 || len(in) != 1 || len(answer) != 1 {
			t.Fatalf("follow-up %s: %d followup_out, %d followup_result at GB, %d followup_in, %d followup_answer at TH; want one each",
				f.id, len(out), len(result), len(in), len(answer))
		}
		if out[0].Outcome != ledger.OutcomeOK || out[0].RequestID != p.RequestID || out[0].Partner != "TH" || out[0].Count != 1 || out[0].Body.Actor != "user:ivan" {
			t.Errorf("followup_out = %+v; want ok, request %s, TH, 1 hit, by ivan", out[0].Header, p.RequestID)
		}
		if in[0].RequestID != p.RequestID || in[0].Partner != "GB" || in[0].Count != 1 || in[0].HitCount != 1 {
			t.Errorf("followup_in = %+v; want request %s from GB, 1 tag, 1 matched", in[0].Header, p.RequestID)
		}
		if result[0].Outcome != f.outcome || answer[0].Outcome != f.outcome || result[0].Digest != answer[0].Digest ||
			result[0].Count != f.shared || answer[0].Count != f.shared || result[0].Handling != answer[0].Handling {
			t.Errorf("followup_result %+v and followup_answer %+v; want outcome %v, %d shared, one digest and handling", result[0].Header, answer[0].Header, f.outcome, f.shared)
		}
	}

	t.Run("recorded once", func(t *testing.T) {
		// What the poll loop does after a write it could not confirm, or a
		// read that polled on another replica at the same time: the same
		// entries again, under the same command IDs: no second entry.
		rec, err := q.followOut.get(f1.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.followOut.recordOut(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := q.followOut.recordResult(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if n, m := len(entriesOfFollowup(t, q, ledger.TypeFollowupOut, f1.ID)), len(entriesOfFollowup(t, q, ledger.TypeFollowupResult, f1.ID)); n != 1 || m != 1 {
			t.Errorf("after recording again: %d followup_out, %d followup_result; want one each", n, m)
		}
	})

	t.Run("a request TH never answered", func(t *testing.T) {
		var fid, rid [16]byte
		_, _ = rand.Read(fid[:])
		_, _ = rand.Read(rid[:])
		peer := exchange.PeerID(r.PeerID().String())
		_, err := q.xcl.Followup(ctx, q.host, peer, exchange.Followup{ID: fid, Owner: "TH", RequestID: rid, Kind: "phone", Epoch: p.Epoch,
			Mode: modeEnforcement, Tags: []exchange.FollowupTag{{Reach: reachOpen, Tag: tagOf(k.Tags[0])}}, Basis: "b", Purpose: "p"})
		var denied *exchange.DeniedError
		if !errors.As(err, &denied) || denied.Reason != exchange.ReasonUnknownRequest {
			t.Fatalf("follow-up of a request TH never answered: %v; want unknown_request", err)
		}
		es := entriesOfFollowup(t, r, ledger.TypeDenial, hex.EncodeToString(fid[:]))
		if len(es) != 1 || es[0].RequestID != hex.EncodeToString(rid[:]) || es[0].Partner != "GB" {
			t.Errorf("TH's denial entries of the follow-up = %+v; want one, of request %x from GB", es, rid)
		}
		// And GB's own node holds nothing of such a request: refused before sending.
		if _, err := q.followOut.Send(ctx, ivan, hex.EncodeToString(rid[:]), std); !errors.Is(err, httpapi.ErrNotFound) {
			t.Errorf("GB's node follows up a request it never sent: %v; want ErrNotFound", err)
		}
	})

	t.Run("no identifier, and no tag at the owner", func(t *testing.T) {
		sec := secrets("phone", values)
		tags := map[string][][]byte{}
		for i, tg := range k.Tags {
			tags[fmt.Sprintf("tag of hit #%d", i+1)] = [][]byte{tg.Tag, []byte(hex.EncodeToString(tg.Tag)),
				[]byte(base64.StdEncoding.EncodeToString(tg.Tag))}
		}
		if len(wire.Bytes()) == 0 {
			t.Fatal("no follow-up stream recorded")
		}
		mustNotContain(t, "follow-up streams", wire.Bytes(), sec)
		mustNotContain(t, "logs", logs.Bytes(), sec)
		mustNotContain(t, "logs", logs.Bytes(), tags)
		for _, n := range []*Node{q, r} {
			es, err := n.Audit().Entries(ctx, ledger.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, e := range es {
				all = fmt.Appendf(all, "%+v\n", e)
			}
			mustNotContain(t, n.Agency()+"'s ledger", all, sec)
			mustNotContain(t, n.Agency()+"'s ledger", all, tags)
		}
		// Every byte of both agencies' stores, as one holding the storage
		// key reads them: no identifier of the query at either (TH holds
		// the two it was asked about as its own records: those are not
		// the query's to leak), no tag at TH.
		asked := secrets("phone", values[1:2]) // the one TH does not hold
		for _, a := range []*agency{gb, th} {
			key, err := readStorageKey(filepath.Join(a.dirs[0], StorageKeyFile), "")
			if err != nil {
				t.Fatal(err)
			}
			var needles [][]byte
			var what []string
			for c, forms := range map[string]map[string][][]byte{"GB": sec, "TH": asked}[a.cc] {
				for _, f := range forms {
					needles, what = append(needles, f), append(what, "identifier "+c)
				}
			}
			forbidden := len(needles)
			for name, forms := range tags {
				for _, f := range forms {
					needles, what = append(needles, f), append(what, name)
				}
			}
			if a.cc == "TH" {
				forbidden = len(needles)
			}
			a.stop(0)
			found, err := ledger.FindOnDisk(a.dirs[0], key, needles)
			if err != nil {
				t.Fatal(err)
			}
			keptTags := 0
			for _, f := range found {
				switch {
				case f.Needle < forbidden:
					t.Errorf("%s's stores hold the %s (%s, %s)", a.cc, what[f.Needle], f.Path, f.How)
				case f.How == "raw":
					t.Errorf("%s's stores hold the %s in plaintext (%s)", a.cc, what[f.Needle], f.Path)
				default:
					keptTags++
				}
			}
			// GB keeps the tags of its hits for the window, encrypted: the
			// scan must see them, or it sees nothing.
			if a.cc == "GB" && keptTags == 0 {
				t.Error("GB's stores: the kept tags are not found with the storage key: the scan sees nothing")
			}
		}
		if !bytes.Contains(wire.Bytes(), k.Tags[0].Tag) {
			t.Error("the tag of hit #1 is not on the wire: the recorder sees nothing")
		}
	})
}

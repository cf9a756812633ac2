package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

var _ httpapi.FollowupInboxBackend = (*backend)(nil)

// FollowupInbox lists the follow-ups of the kinds u may answer, by
// deadline (httpapi.FollowupInboxBackend).
func (b *backend) FollowupInbox(ctx context.Context, u httpapi.User) ([]httpapi.FollowupInboxItem, error) {
	return b.followups.inbox(u)
}

// AnswerFollowup decides follow-up id for the liaison u
// (httpapi.FollowupInboxBackend).
func (b *backend) AnswerFollowup(ctx context.Context, u httpapi.User, id string, a httpapi.AnswerFollowup) (httpapi.FollowupInboxItem, error) {
	return b.followups.answer(ctx, u, id, a)
}

// mayAnswer reports whether u may answer follow-ups of kind.
func (f *followupsIn) mayAnswer(u httpapi.User, kind string) bool {
	return f.policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role},
		Action: "answer_followup", Kind: kind, Time: f.now().UTC()}).Allow
}

// inbox lists the follow-ups of the kinds u may answer, earliest deadline
// first (open ones before answered ones with the same deadline).
func (f *followupsIn) inbox(u httpapi.User) ([]httpapi.FollowupInboxItem, error) {
	if !slices.ContainsFunc(kindNames(), func(k string) bool { return f.mayAnswer(u, k) }) {
		return nil, fmt.Errorf("follow-up inbox: role %s may answer no follow-up under the policy in force: %w", u.Role, httpapi.ErrForbidden)
	}
	out := []httpapi.FollowupInboxItem{}
	allowed := map[string]bool{}
	err := f.audit.Scan(nsFollowupsIn, "", func(key string, v []byte) error {
		var r inboundRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("follow-up record %s: %w", key, err)
		}
		ok, seen := allowed[r.Kind]
		if !seen {
			ok = f.mayAnswer(u, r.Kind)
			allowed[r.Kind] = ok
		}
		if ok {
			out = append(out, f.item(&r))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("follow-up inbox: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Deadline.Equal(out[j].Deadline) {
			return out[i].Deadline.Before(out[j].Deadline)
		}
		return out[i].State == followupOpen && out[j].State != followupOpen
	})
	return out, nil
}

// answer decides follow-up id for the liaison u.
func (f *followupsIn) answer(ctx context.Context, u httpapi.User, id string, a httpapi.AnswerFollowup) (httpapi.FollowupInboxItem, error) {
	if err := a.Check(); err != nil {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("answer follow-up %s: %w", id, err)
	}
	if raw, err := hex.DecodeString(id); err != nil || len(raw) != 16 {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("follow-up ID %q: want 32 hex digits: %w", id, httpapi.ErrBadRequest)
	}
	rec, stored, err := f.record(id)
	if errors.Is(err, ledger.ErrNotFound) {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("no follow-up %s: %w", id, httpapi.ErrNotFound)
	} else if err != nil {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("answer follow-up %s: %w", id, err)
	}
	if !f.mayAnswer(u, rec.Kind) {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("role %s may not answer follow-ups of %s under the policy in force: %w",
			u.Role, rec.Kind, httpapi.ErrForbidden)
	}
	if rec.State != followupOpen && rec.Audited {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("follow-up %s was answered already (%s by %s): %w", id, rec.State, rec.Actor, httpapi.ErrConflict)
	}
	d := decision{refuse: a.Refuse, reason: a.Reason, share: a.Share, handling: a.Handling, message: a.Message, actor: actorName(u)}
	done, err := f.decide(ctx, rec, stored, d)
	if err != nil {
		return httpapi.FollowupInboxItem{}, err
	}
	return f.item(done), nil
}

// item is a record as the liaison sees it, with the records resolved from
// the data group.
func (f *followupsIn) item(r *inboundRecord) httpapi.FollowupInboxItem {
	state := r.State
	if state == "" {
		state = followupOpen
	}
	it := httpapi.FollowupInboxItem{ID: r.ID, Partner: r.Partner, RequestID: r.RequestID, Kind: r.Kind, Epoch: r.Epoch,
		Mode: r.Mode, Basis: r.Basis, Purpose: r.Purpose, Urgent: r.Urgent, Received: r.Received, Deadline: r.Deadline,
		State: state, Handling: r.Handling, Actor: r.Actor, AnsweredAt: r.AnsweredAt, Hits: []httpapi.FollowupHit{}}
	it.Overdue = state == followupOpen && f.now().After(r.Deadline)
	for i, h := range r.Hits {
		fh := httpapi.FollowupHit{Hit: i + 1, Reach: h.Reach, Records: []httpapi.FollowupRecord{}}
		for _, x := range f.resolve(h.Records) {
			fh.Records = append(fh.Records, httpapi.FollowupRecord{Class: x.Class, Reference: x.Ref, Contact: x.Contact,
				Handling: x.Handling, Changed: x.Changed})
		}
		it.Hits = append(it.Hits, fh)
	}
	if len(r.Answer) > 0 {
		pub, _ := f.signer.Public().(ed25519.PublicKey)
		if a, err := exchange.VerifyFollowupAnswer(pub, r.Answer); err == nil {
			it.Answer = answerView(a, r.Answer)
		}
	}
	return it
}

// answerView shows a signed answer.
func answerView(a *exchange.FollowupAnswer, signed []byte) *httpapi.FollowupAnswer {
	sum := sha256.Sum256(signed)
	v := &httpapi.FollowupAnswer{Outcome: followupShared, Reason: a.Reason, Handling: a.Handling, Message: a.Message,
		Digest: hex.EncodeToString(sum[:])}
	if a.Refused {
		v.Outcome = followupRefused
	}
	for _, s := range a.Shared {
		v.Shared = append(v.Shared, httpapi.FollowupSharedItem{Hit: s.Hit, Reference: s.Reference, Contact: s.Contact, Handling: s.Handling})
	}
	return v
}

// kindNames are the identifier kinds by name.
func kindNames() []string {
	var out []string
	for _, k := range ident.Kinds() {
		out = append(out, k.String())
	}
	return out
}

package node

import (
	"context"
	"fmt"
	"sort"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/policy"
)

// The querier's follow-up routes of the API (httpapi.FollowupOutBackend).

var _ httpapi.FollowupOutBackend = (*backend)(nil)

func (b *backend) Followup(ctx context.Context, u httpapi.User, id string, req httpapi.FollowupRequest) (httpapi.SentFollowup, error) {
	return b.followOut.Send(ctx, u, id, req)
}

func (b *backend) Followups(ctx context.Context, u httpapi.User) ([]httpapi.SentFollowup, error) {
	return b.followOut.List(u)
}

func (b *backend) SentFollowup(ctx context.Context, u httpapi.User, id string, poll bool) (httpapi.SentFollowup, error) {
	return b.followOut.Record(ctx, u, id, poll)
}

// mayRead reports whether u may read rec and its answer: the user who
// sent it, or one the policy in force lets read follow-ups (action
// read_followup: auditors).
func (f *followupOut) mayRead(u httpapi.User, rec *sentFollowup) bool {
	if u.Name == rec.User {
		return true
	}
	return f.cfg.Policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role}, Action: "read_followup",
		Kind: rec.Kind, Time: f.cfg.Now().UTC()}).Allow
}

// List returns the follow-ups u may read, newest first, without their
// answers.
func (f *followupOut) List(u httpapi.User) ([]httpapi.SentFollowup, error) {
	recs, err := f.all()
	if err != nil {
		return nil, fmt.Errorf("list follow-ups: %w", err)
	}
	now := f.cfg.Now()
	out := []httpapi.SentFollowup{}
	for _, rec := range recs {
		if f.mayRead(u, rec) {
			out = append(out, rec.view(now))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Record returns follow-up id with the partner's answer, verified again
// under its pinned key, to the user who sent it and to auditors
// (httpapi.ErrForbidden for anyone else). With poll, an open follow-up
// is polled first (the answer, if it came, is recorded as the loop would).
func (f *followupOut) Record(ctx context.Context, u httpapi.User, id string, poll bool) (httpapi.SentFollowup, error) {
	rec, err := f.get(id)
	if err != nil {
		return httpapi.SentFollowup{}, err
	}
	if !f.mayRead(u, rec) {
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up %s: only %s, who sent it, and auditors may read it: %w", id, rec.User, httpapi.ErrForbidden)
	}
	if poll && rec.Status == httpapi.FollowupOpen {
		if err := f.update(ctx, rec); err != nil {
			f.cfg.Log.Info("follow-up poll on read", "followup", rec.ID, "partner", rec.Partner, "err", err)
		}
	}
	v := rec.view(f.cfg.Now())
	if rec.Signed != nil {
		a, err := f.verify(rec)
		if err != nil {
			v.Reason = "the stored answer does not verify under " + rec.Partner + "'s pinned key: " + err.Error()
			return v, nil
		}
		v.Answer, v.AnsweredAt = sentAnswerView(rec, a), a.Time.UTC()
	}
	return v, nil
}

// verify checks rec's stored answer under the partner's pinned key, and
// that it answers rec.
func (f *followupOut) verify(rec *sentFollowup) (*exchange.FollowupAnswer, error) {
	key, err := f.cfg.Keys.AgencyKey(rec.Partner)
	if err != nil {
		return nil, fmt.Errorf("follow-up %s: %w", rec.ID, err)
	}
	a, err := exchange.VerifyFollowupAnswer(key, rec.Signed)
	if err != nil {
		return nil, fmt.Errorf("follow-up %s: %w", rec.ID, err)
	}
	id, req, err := rec.ids()
	if err != nil {
		return nil, err
	}
	if a.FollowupID != id || a.RequestID != req || a.Owner != rec.Partner {
		return nil, fmt.Errorf("follow-up %s: the stored answer answers another follow-up: %w", rec.ID, exchange.ErrVerify)
	}
	return a, nil
}

// sentAnswerView is a's content for the API (answerView), with the hits
// it shares named by their numbers in the query's answer (rec.Hits), not
// their position in the follow-up.
func sentAnswerView(rec *sentFollowup, a *exchange.FollowupAnswer) *httpapi.FollowupAnswer {
	v := answerView(a, rec.Signed)
	for i, s := range v.Shared {
		if s.Hit >= 1 && s.Hit <= len(rec.Hits) {
			v.Shared[i].Hit = rec.Hits[s.Hit-1]
		}
	}
	return v
}

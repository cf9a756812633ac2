package consoletest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// AddFollowup puts a partner's follow-up in the fake's inbox: received
// ago, due in due (negative: past), naming one hit on a record with
// reference ref and contact.
func (f *Fake) AddFollowup(partner, kind string, ago, due time.Duration, urgent bool, ref, contact string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	id := fmt.Sprintf("%032x", len(f.followups)+1)
	f.followups = append(f.followups, httpapi.FollowupInboxItem{ID: id, Partner: partner, RequestID: fmt.Sprintf("req-%04d", len(f.followups)+7),
		Kind: kind, Epoch: 3, Mode: "enforcement", Basis: "Prüm II art. 6", Purpose: "identify the network's organisers", Urgent: urgent,
		Received: now.Add(-ago), Deadline: now.Add(due), State: "open", Handling: "H2",
		Hits: []httpapi.FollowupHit{{Hit: 1, Reach: "open", Records: []httpapi.FollowupRecord{{Class: "suspect", Reference: ref, Contact: contact, Handling: "H2"}}}}})
	it := f.followups[len(f.followups)-1]
	var urgency uint8
	if urgent {
		urgency = 1
	}
	f.append(format.Header{Time: now, Type: format.TypeFollowupIn, Agency: Agency, Partner: partner, RequestID: it.RequestID,
		FollowupID: id, Kind: kind, Epoch: it.Epoch, Mode: it.Mode, Count: 1, HitCount: 1, Urgency: urgency, Outcome: format.OutcomeOK},
		format.Body{LegalBasis: it.Basis, Purpose: it.Purpose})
	f.sign()
	return id
}

// AnswerFollowup answers an open follow-up as the node would: the
// liaison's decision, signed (here: hashed) and recorded.
func (f *Fake) AnswerFollowup(ctx context.Context, u httpapi.User, id string, a httpapi.AnswerFollowup) (httpapi.FollowupInboxItem, error) {
	if u.Role != "liaison" {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("role %s may not answer_followup: %w", u.Role, httpapi.ErrForbidden)
	}
	if err := a.Check(); err != nil {
		return httpapi.FollowupInboxItem{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.followups, func(it httpapi.FollowupInboxItem) bool { return it.ID == id })
	if i < 0 {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("no follow-up %q: %w", id, httpapi.ErrNotFound)
	}
	it := &f.followups[i]
	if it.State != "open" {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("follow-up %s is %s: %w", id, it.State, httpapi.ErrConflict)
	}
	ans := &httpapi.FollowupAnswer{Outcome: "shared", Handling: a.Handling, Message: a.Message}
	it.State = "shared"
	if a.Refuse {
		ans, it.State = &httpapi.FollowupAnswer{Outcome: "refused", Reason: a.Reason}, "refused"
	} else {
		for _, h := range it.Hits {
			s := httpapi.FollowupSharedItem{Hit: h.Hit}
			for _, r := range h.Records {
				if slices.Contains(a.Share, "reference") {
					s.Reference = r.Reference
				}
				if slices.Contains(a.Share, "contact") {
					s.Contact = r.Contact
				}
			}
			ans.Shared = append(ans.Shared, s)
		}
	}
	d := sha256.Sum256([]byte(fmt.Sprintf("%+v", *ans)))
	ans.Digest = hex.EncodeToString(d[:])
	it.Answer, it.Actor, it.AnsweredAt = ans, "user:"+u.Name, time.Now()
	outcome := format.OutcomeOK
	if a.Refuse {
		outcome = format.OutcomeDenied
	}
	f.append(format.Header{Time: time.Now(), Type: format.TypeFollowupAnswer, Agency: Agency, Partner: it.Partner, RequestID: it.RequestID,
		FollowupID: id, Handling: ans.Handling, Count: uint64(len(ans.Shared)), Outcome: outcome},
		format.Body{Actor: u.Name})
	f.sign()
	return *it, nil
}

// FollowupInbox lists the fake's follow-ups, earliest deadline first.
func (f *Fake) FollowupInbox(ctx context.Context, u httpapi.User) ([]httpapi.FollowupInboxItem, error) {
	if u.Role != "liaison" {
		return nil, fmt.Errorf("role %s may not answer_followup: %w", u.Role, httpapi.ErrForbidden)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.followups)
	now := time.Now()
	for i := range out {
		out[i].Overdue = out[i].State == "open" && now.After(out[i].Deadline)
	}
	slices.SortStableFunc(out, func(a, b httpapi.FollowupInboxItem) int { return a.Deadline.Compare(b.Deadline) })
	return out, nil
}

package consoletest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// Followup follows up hits of the partner's part of query id, as the
// node does: only the user who asked, only numbers that are hits.
func (f *Fake) Followup(ctx context.Context, u httpapi.User, id string, req httpapi.FollowupRequest) (httpapi.SentFollowup, error) {
	if err := f.Authorize(u, "match"); err != nil {
		return httpapi.SentFollowup{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.hitCount[id]
	if !ok {
		return httpapi.SentFollowup{}, fmt.Errorf("no query %q with hits to follow up: %w", id, httpapi.ErrNotFound)
	}
	if req.Partner != Partner {
		return httpapi.SentFollowup{}, fmt.Errorf("query %s has no hits of %s: %w", id, req.Partner, httpapi.ErrBadRequest)
	}
	for _, h := range req.Hits {
		if h < 1 || h > n {
			return httpapi.SentFollowup{}, fmt.Errorf("hit #%d: %s answered %d hits: %w", h, Partner, n, httpapi.ErrBadRequest)
		}
	}
	now := time.Now()
	deadline := now.Add(7 * 24 * time.Hour)
	if req.Urgent {
		deadline = now.Add(8 * time.Hour)
	}
	s := httpapi.SentFollowup{ID: fmt.Sprintf("%032x", 0xf00+len(f.sent)), Query: id, RequestID: "req-" + id, Partner: req.Partner,
		User: u.Name, Kind: "phone", Mode: "enforcement", Hits: slices.Clone(req.Hits), Reaches: []string{"open"}, Basis: req.Basis,
		Purpose: req.Purpose, Urgent: req.Urgent, Created: now, Status: httpapi.FollowupOpen, Deadline: deadline}
	s.OutIndex = f.record(format.Header{Time: now, Type: format.TypeFollowupOut, Agency: Agency, Partner: s.Partner, RequestID: s.RequestID,
		FollowupID: s.ID, Kind: s.Kind, Mode: s.Mode, Count: uint64(len(s.Hits)), Outcome: format.OutcomeOK},
		format.Body{Actor: u.Name, LegalBasis: s.Basis, Purpose: s.Purpose})
	f.sent = append(f.sent, s)
	return s, nil
}

// AnswerSent makes the partner answer the fake's follow-up id, sharing a
// reference and contact for each hit it names.
func (f *Fake) AnswerSent(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.sent {
		if s := &f.sent[i]; s.ID == id {
			a := &httpapi.FollowupAnswer{Outcome: "shared", Handling: "H2", Message: "call the duty desk first", Digest: fmt.Sprintf("%064x", i+1)}
			for _, h := range s.Hits {
				a.Shared = append(a.Shared, httpapi.FollowupSharedItem{Hit: h, Reference: fmt.Sprintf("TH-AHTD-%03d", h), Contact: "Pol. Lt. Somchai, +66 2 000 0000"})
			}
			s.Status, s.Answer, s.AnsweredAt = httpapi.FollowupAnswered, a, time.Now()
			s.ResultIndex = f.record(format.Header{Time: s.AnsweredAt, Type: format.TypeFollowupResult, Agency: Agency, Partner: s.Partner,
				RequestID: s.RequestID, FollowupID: s.ID, Handling: a.Handling, Count: uint64(len(a.Shared)), Outcome: format.OutcomeOK}, format.Body{})
		}
	}
}

// Followups lists u's follow-ups (an auditor's: all, as the node's
// read_followup lets auditors), newest first, without their answers.
func (f *Fake) Followups(ctx context.Context, u httpapi.User) ([]httpapi.SentFollowup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []httpapi.SentFollowup
	for i := len(f.sent) - 1; i >= 0; i-- {
		if s := f.sent[i]; s.User == u.Name || u.Role == "auditor" {
			s.Answer = nil
			out = append(out, s)
		}
	}
	return out, nil
}

// SentFollowup returns one follow-up with its answer, to its sender and
// to auditors.
func (f *Fake) SentFollowup(ctx context.Context, u httpapi.User, id string, poll bool) (httpapi.SentFollowup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sent {
		if s.ID == id {
			if s.User != u.Name && u.Role != "auditor" {
				return httpapi.SentFollowup{}, fmt.Errorf("follow-up %s is %s's: %w", id, s.User, httpapi.ErrForbidden)
			}
			if poll {
				s.Polled = time.Now()
			}
			return s, nil
		}
	}
	return httpapi.SentFollowup{}, fmt.Errorf("no follow-up %q: %w", id, httpapi.ErrNotFound)
}

// record appends an entry, signs the tree and returns the entry's index;
// the caller holds mu.
func (f *Fake) record(h format.Header, b format.Body) *uint64 {
	i := uint64(len(f.entries))
	f.append(h, b)
	f.sign()
	return &i
}

package consoletest

import (
	"context"
	"slices"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// HoldVictims makes the partner hold values as victims' records: they hit
// safeguarding queries only, with the reach "victim".
func (f *Fake) HoldVictims(values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range values {
		f.victims[v] = true
	}
}

// Hold makes the queries that follow wait, after the first partner has
// answered, until release is called: the progress page then shows one
// partner answered and one asked.
func (f *Fake) Hold() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hold = ch
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.hold == ch {
			f.hold = nil
			close(ch)
		}
	}
}

// QueryProgress runs Query and reports its partners' parts one by one:
// the partner's answer, then (after Hold's release, when held) the other
// partner's refusal.
func (f *Fake) QueryProgress(ctx context.Context, u httpapi.User, req httpapi.QueryRequest,
	asking func(string, []string), answered func(httpapi.PartnerResult)) (httpapi.QueryResult, error) {
	res, err := f.Query(ctx, u, req)
	if err != nil || res.Status != "done" {
		return res, err
	}
	var names []string
	for _, pr := range res.Partners {
		names = append(names, pr.Agency)
	}
	slices.Sort(names)
	asking(res.ID, names)
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	for i, pr := range res.Partners {
		if i == 1 && hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return httpapi.QueryResult{}, ctx.Err()
			}
		}
		answered(pr)
	}
	return res, nil
}

// SyncStates lists the fake's copies of partners' sets.
func (f *Fake) SyncStates(ctx context.Context) ([]httpapi.SyncState, error) {
	now := time.Now()
	return []httpapi.SyncState{
		{Partner: Partner, Kind: "email", Reach: "open", Epoch: 3, Version: 2, Entries: 1024, Synced: now.Add(-40 * time.Second)},
		{Partner: Partner, Kind: "phone", Reach: "open", Epoch: 3, Version: 7, Entries: 4096, Synced: now.Add(-25 * time.Second)},
		{Partner: Partner, Kind: "phone", Reach: "victim", Epoch: 3, Version: 1, Entries: 256, Synced: now.Add(-25 * time.Second)},
		{Partner: "FR", Kind: "phone", Reach: "open", Refused: "kind_not_allowed"},
	}, nil
}

// Budgets lists the fake's budgets, with the partner's matches of today
// counted against its daily budget; caseRef adds that case's budget.
func (f *Fake) Budgets(ctx context.Context, u httpapi.User, caseRef string) ([]httpapi.Budget, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	day := time.Now().UTC().Truncate(24 * time.Hour)
	var used uint64
	for _, e := range f.entries {
		if e.Type == format.TypeMatchIn && !e.Time.Before(day) {
			used += e.PaddedSize
		}
	}
	out := []httpapi.Budget{
		{Scope: "partner", Partner: Partner, Kind: "phone", Used: used + 900, Limit: 1000, Reserve: 20},
		{Scope: "partner", Partner: Partner, Kind: "email", Used: 128, Limit: 1000, Reserve: 20},
		{Scope: "safeguarding", Partner: Partner, Kind: "phone", Used: 64, Limit: 500, Reserve: 20},
		{Scope: "kind", Kind: "phone", Used: used + 1400, Limit: 5000},
		{Scope: "kind", Kind: "email", Used: 128, Limit: 5000},
	}
	if caseRef != "" {
		var c uint64
		for _, e := range f.entries {
			if e.Type == format.TypeMatchOut && e.Body.CaseRef == caseRef {
				c += e.PaddedSize
			}
		}
		out = append(out, httpapi.Budget{Scope: "case", Case: caseRef, Used: c, Limit: 2000, Reserve: 20})
	}
	return out, nil
}

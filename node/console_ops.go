package node

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/xborder/xborder/internal/console"
	"github.com/xborder/xborder/internal/httpapi"
)

// What the console's status and policy pages show admins and stewards
// besides the API's calls (console.Operator): this replica's copies of
// partners' sets, and the budgets of the policy in force with their use
// today. The console checks the policy action (manage_partners) first.

var _ console.Operator = (*backend)(nil)

// SyncStates lists this replica's copies of partners' sets.
func (b *backend) SyncStates(ctx context.Context) ([]httpapi.SyncState, error) {
	if b.partners == nil {
		return nil, nil
	}
	return b.partners.states(), nil
}

// states describes each copy, by partner, kind and reach. A copy whose
// sync runs now is reported as syncing, with what it held before (its
// lock is not waited for).
func (ps *partnerSets) states() []httpapi.SyncState {
	ps.mu.Lock()
	keys := make([]string, 0, len(ps.copies))
	copies := make(map[string]*partnerCopy, len(ps.copies))
	refused := map[string]string{}
	for k, pc := range ps.copies {
		keys = append(keys, k)
		copies[k] = pc
		if r := ps.refused[k]; r != nil {
			refused[k] = string(r.reason)
		}
	}
	ps.mu.Unlock()
	slices.Sort(keys)
	out := make([]httpapi.SyncState, 0, len(keys))
	for _, k := range keys {
		partner, kr, _ := strings.Cut(k, "/")
		kind, reach := splitKindReach(kr)
		st := httpapi.SyncState{Partner: partner, Kind: kind, Reach: reach, Refused: refused[k]}
		pc := copies[k]
		if pc.mu.TryLock() {
			st.Epoch, st.Synced = pc.epoch, pc.synced
			if pc.set != nil {
				st.Version, st.Entries = pc.set.Version(), pc.set.Entries()
			}
			pc.mu.Unlock()
		} else {
			st.Syncing = true
		}
		out = append(out, st)
	}
	return out
}

// Budgets lists the budgets of the policy in force, and caseRef's when
// given, with their use today as this replica's audit ledger holds it.
func (b *backend) Budgets(ctx context.Context, u httpapi.User, caseRef string) ([]httpapi.Budget, error) {
	pol := b.policy.Policy()
	bs := pol.Budgets()
	if cb, ok := pol.CaseBudget(caseRef); ok {
		bs = append(bs, cb)
	}
	out := make([]httpapi.Budget, 0, len(bs))
	for _, x := range bs {
		used, err := b.audit.BudgetUsed(x.Key)
		if err != nil {
			return nil, fmt.Errorf("budget %s: %w", x.Key, err)
		}
		hb := httpapi.Budget{Scope: x.Scope, Partner: x.Partner, Kind: x.Kind, Used: used, Limit: x.Limit, Reserve: x.Reserve}
		if x.Scope == "case" {
			hb.Case = caseRef
		}
		out = append(out, hb)
	}
	return out, nil
}

package policy

// Budget is one budget of the limits file, keyed as Decide's reservations
// key it (with DayPlaceholder for the UTC day), so that a caller can ask
// the ledger how much of it is used (ledger.BudgetUsed).
type Budget struct {
	// Scope is whose budget it is: "partner" (partner's daily budget for
	// Kind, its queries to this agency), "safeguarding" (the daily budget
	// of its safeguarding queries of Kind) or "kind" (the daily cap of
	// Kind across all partners).
	Scope   string
	Partner string // partner and safeguarding
	Kind    string
	Key     string // the reservation key
	Limit   int64  // without the urgent reserve
	Reserve int64  // percent of Limit an urgent query may use on top (partner and safeguarding)
}

// Budgets lists the daily budgets of the limits file: per partner and
// kind (and its safeguarding budget, when the agreement has one), by
// partner then kind, then the global daily cap of each kind a partner
// exchanges. Default has none.
func (s *Set) Budgets() []Budget {
	var out []Budget
	caps := map[string]bool{}
	for _, p := range s.Partners() {
		for _, k := range s.PartnerKinds(p) {
			pk := s.limits.partners[p][k]
			out = append(out, Budget{Scope: "partner", Partner: p, Kind: k, Key: "partner/" + p + "/" + k + "/" + DayPlaceholder,
				Limit: pk.dailyBudget, Reserve: s.limits.reserve})
			if g := pk.safeguarding; g != nil {
				out = append(out, Budget{Scope: "safeguarding", Partner: p, Kind: k, Key: "safeguarding/" + p + "/" + k + "/" + DayPlaceholder,
					Limit: g.dailyBudget, Reserve: s.limits.reserve})
			}
			caps[k] = true
		}
	}
	for _, k := range kindNames {
		if caps[k] {
			out = append(out, Budget{Scope: "kind", Kind: k, Key: "kind/" + k + "/" + DayPlaceholder, Limit: s.limits.kinds[k].dailyCap})
		}
	}
	return out
}

// CaseBudget returns the budget of a local case reference (the key
// Decide reserves this agency's queries under), and false when the limits
// file sets no case budget.
func (s *Set) CaseBudget(ref string) (Budget, bool) {
	if s.limits.caseLimit <= 0 || ref == "" {
		return Budget{}, false
	}
	return Budget{Scope: "case", Key: "case/local/" + caseEscaper.Replace(ref), Limit: s.limits.caseLimit, Reserve: s.limits.reserve}, true
}

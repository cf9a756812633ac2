package policy

import "testing"

// TestBudgets: every budget Budgets lists has the key and limit that
// Decide reserves under for a partner's query (enforcement or
// safeguarding), and CaseBudget those of a local query's case.
func TestBudgets(t *testing.T) {
	s := examples(t)
	bs := s.Budgets()
	checked := map[string]int{}
	for _, b := range bs {
		var r Request
		switch b.Scope {
		case "partner", "kind":
			p := b.Partner
			if b.Scope == "kind" {
				p = firstPartnerOf(s, b.Kind)
			}
			r = inbound(p, b.Kind, 1)
		case "safeguarding":
			r = with(inbound(b.Partner, b.Kind, 1), func(r *Request) { r.Context.Mode = "safeguarding" })
		default:
			t.Fatalf("budget %+v of unknown scope", b)
		}
		d := s.Decide(r)
		if !d.Allow {
			continue // a forbid of the example (kind not permitted): Decide reserves nothing
		}
		found := false
		for _, res := range d.Reserve {
			if res.Key == b.Key {
				found = true
				if res.Limit != b.Limit {
					t.Errorf("budget %s: limit %d; Decide reserves under limit %d", b.Key, b.Limit, res.Limit)
				}
			}
		}
		if !found {
			t.Errorf("budget %s is not among Decide's reservations %+v", b.Key, d.Reserve)
		}
		checked[b.Scope]++
	}
	for _, sc := range []string{"partner", "safeguarding", "kind"} {
		if checked[sc] == 0 {
			t.Errorf("no %s budget checked against Decide (of %d budgets)", sc, len(bs))
		}
	}
	cb, ok := s.CaseBudget("OP-1")
	if !ok {
		t.Fatal("CaseBudget(OP-1): none; the example sets a case budget")
	}
	d := s.Decide(local("investigator", "TH", "phone", 1))
	found := false
	for _, res := range d.Reserve {
		found = found || res.Key == cb.Key && res.Limit == cb.Limit
	}
	if !d.Allow || !found {
		t.Errorf("case budget %+v not among a local query's reservations %+v (allow %v)", cb, d.Reserve, d.Allow)
	}
	if b, ok := Default().CaseBudget("OP-1"); ok || len(Default().Budgets()) != 0 {
		t.Errorf("Default: case budget %+v, %d budgets; want none", b, len(Default().Budgets()))
	}
}

// firstPartnerOf is a partner that exchanges kind.
func firstPartnerOf(s *Set, kind string) string {
	for _, p := range s.Partners() {
		for _, k := range s.PartnerKinds(p) {
			if k == kind {
				return p
			}
		}
	}
	return ""
}

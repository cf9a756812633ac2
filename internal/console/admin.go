package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// The policy page shows admins and stewards the policy in force, its
// budgets and their use today, and its history from the ledger, each part
// as far as the policy lets the user see it.

// maxPolicyHistory bounds the policy entries the page lists (the newest).
const maxPolicyHistory = 50

type policyView struct {
	Version    string
	Budgets    []budgetRow
	BudgetPlot plot
	BudgetsErr string
	Case       string // the local case asked about
	History    []ledger.Entry
	HistoryErr string
}

type budgetRow struct {
	httpapi.Budget
	Label   string
	Percent int
}

// budgetLabel names a budget in a chart or table.
func budgetLabel(b httpapi.Budget) string {
	switch b.Scope {
	case "partner":
		return b.Partner + " " + b.Kind + " daily"
	case "safeguarding":
		return b.Partner + " " + b.Kind + " safeguarding daily"
	case "kind":
		return b.Kind + " daily cap, all partners"
	case "case":
		return "case " + b.Case
	}
	return b.Scope
}

// policyPage shows the policy in force, its budgets (Operator, and the
// policy action manage_partners: the budgets are the partner agreements)
// and the policy entries of the ledger (read_ledger or manage_policy; the
// read is recorded, as any ledger read).
func (c *Console) policyPage(w http.ResponseWriter, r *request) error {
	v := policyView{Version: c.b.PolicyVersion(), Case: strings.TrimSpace(r.URL.Query().Get("case"))}
	if len(v.Case) > 128 {
		return fmt.Errorf("a case reference is at most 128 bytes: %w", httpapi.ErrBadRequest)
	}
	op, ok := c.b.(Operator)
	switch err := c.b.Authorize(r.user, "manage_partners"); {
	case !ok:
		v.BudgetsErr = "this node does not report its budgets"
	case err != nil:
		v.BudgetsErr = err.Error()
	default:
		bs, err := op.Budgets(r.Context(), r.user, v.Case)
		if err != nil {
			return err
		}
		var ms []meter
		for _, b := range bs {
			row := budgetRow{Budget: b, Label: budgetLabel(b), Percent: percent(int64(b.Used), b.Limit)}
			v.Budgets = append(v.Budgets, row)
			ms = append(ms, meter{Label: row.Label, Used: int64(b.Used), Limit: b.Limit})
			v.BudgetPlot.Table = append(v.BudgetPlot.Table, [2]string{row.Label, fmt.Sprintf("%d of %d (%d%%)", b.Used, b.Limit, row.Percent)})
		}
		v.BudgetPlot.Title = "Budget use today"
		v.BudgetPlot.Desc = fmt.Sprintf("Bar chart of %d budgets of the policy in force: each bar's full width is the budget's limit (padded identifiers a UTC day, or a case's), its filled part what today's queries used.", len(bs))
		v.BudgetPlot.SVG = drawMeters(v.BudgetPlot.Title, v.BudgetPlot.Desc, ms)
	}
	readErr := c.b.Authorize(r.user, "read_ledger")
	if readErr != nil {
		readErr = c.b.Authorize(r.user, "manage_policy")
	}
	if readErr != nil {
		v.HistoryErr = readErr.Error()
	} else {
		es, err := c.b.Entries(r.Context(), r.user, "policy history (console)", ledger.Filter{Types: []ledger.Type{ledger.TypePolicy}})
		switch {
		case errors.Is(err, httpapi.ErrForbidden):
			v.HistoryErr = err.Error()
		case err != nil:
			return err
		}
		if len(es) > maxPolicyHistory {
			es = es[len(es)-maxPolicyHistory:]
		}
		for i := len(es) - 1; i >= 0; i-- { // newest first
			v.History = append(v.History, es[i])
		}
	}
	c.render(w, r.Request, http.StatusOK, "policy", "Policy", r, v)
	return nil
}

package console

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/xborder/xborder/internal/console/consoletest"
)

// TestPolicyPage: the admin sees every budget with its use and limit, a
// case's budget when asking for it, and the policy's history, whose read
// the node records; a steward, whom the policy lets see neither the
// ledger nor manage the policy, is told so instead of the history.
func TestPolicyPage(t *testing.T) {
	h := newHarness(t, false, false)
	root := h.client(t)
	h.session(t, root, "root")
	resp, body := h.do(t, root, http.MethodGet, "/ui/policy?case=OP-3", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/policy as admin = %d\n%s", resp.StatusCode, body)
	}
	bs, err := h.fake.Budgets(t.Context(), consoletest.Users[3], "OP-3")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		row := fmt.Sprintf(`<th scope="row">%s</th><td>%d</td><td>%d</td><td>%d%%</td>`, budgetLabel(b), b.Used, b.Limit, percent(int64(b.Used), b.Limit))
		if !strings.Contains(body, row) {
			t.Errorf("policy page has no row %s", row)
		}
	}
	if !strings.Contains(body, "case OP-3") || !strings.Contains(body, `id="policy-history"`) {
		t.Errorf("policy page without the case's budget or the history:\n%s", body)
	}
	reads := h.fake.Reads()
	if len(reads) == 0 || reads[len(reads)-1].User != "root" || reads[len(reads)-1].Purpose != "policy history (console)" {
		t.Errorf("the history's read was not recorded as root's: %+v", reads)
	}

	sam := h.client(t)
	h.session(t, sam, "sam")
	n := len(h.fake.Reads())
	_, body = h.do(t, sam, http.MethodGet, "/ui/policy", nil)
	if strings.Contains(body, `id="policy-history"`) || !strings.Contains(body, "Not shown: role steward may not manage_policy") {
		t.Errorf("the steward's policy page shows the history, or does not say why not:\n%s", body)
	}
	if len(h.fake.Reads()) != n {
		t.Errorf("the steward's page read the ledger")
	}
	if resp, _ := h.do(t, root, http.MethodGet, "/ui/policy?case="+strings.Repeat("x", 200), nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a case reference of 200 bytes = %d; want 400", resp.StatusCode)
	}
}

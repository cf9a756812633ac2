package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// TestConsoleLinkRecorded checks that making a console sign-in link is
// recorded on the audit ledger as a user entry (who made a link for
// whom), before the link exists, and that the entry holds nothing of the
// link's secret; a link for no such user records nothing.
func TestConsoleLinkRecorded(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	dir := t.TempDir()
	res, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB"})
	if err != nil {
		t.Fatal(err)
	}
	n := openNode(t, dir)
	until(t, "admin seeded", func() bool { _, err := n.Audit().Get(nsNode, adminSeeded); return err == nil })
	if _, err := n.users.AddUser(ctx, "user:admin", "ivan", "investigator"); err != nil {
		t.Fatal(err)
	}
	tok, err := ReadToken(res.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := &httpapi.Client{BaseURL: n.APIURL(), Token: tok}
	before := len(byType(t, n, ledger.TypeUser))
	var he *httpapi.Error
	if _, err := admin.ConsoleLink(ctx, "nobody"); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Fatalf("ConsoleLink(nobody) = %v; want 404", err)
	}
	if got := len(byType(t, n, ledger.TypeUser)); got != before {
		t.Fatalf("%d user entries after a link for no such user; want %d", got, before)
	}
	l, err := admin.ConsoleLink(ctx, "ivan")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(l.Path)
	if err != nil || u.Query().Get("s") == "" {
		t.Fatalf("link path %q; want /ui/link?s=SECRET", l.Path)
	}
	es := byType(t, n, ledger.TypeUser)
	if len(es) != before+1 {
		t.Fatalf("%d user entries after a link; want %d", len(es), before+1)
	}
	e := es[len(es)-1]
	if e.Body.Actor != "user:admin" || e.Body.Purpose != "sign-in link for user ivan" || e.Outcome != ledger.OutcomeOK {
		t.Errorf("the link's entry: actor %q, purpose %q, outcome %v; want user:admin, \"sign-in link for user ivan\", ok",
			e.Body.Actor, e.Body.Purpose, e.Outcome)
	}
	all, _ := json.Marshal(byType(t, n, ledger.TypeUser))
	mustNotContain(t, "the user entries", all, map[string][][]byte{"link secret": {[]byte(u.Query().Get("s"))}})
}

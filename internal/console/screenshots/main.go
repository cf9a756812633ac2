// Command screenshots takes a screenshot of each page of the web console
// into docs/console/, for docs/console.md. It serves the console on
// loopback over a fake node (internal/console/consoletest) and drives
// Debian's chromium through each role's task with the same chromedp code
// as the console's browser tests:
//
//	go run ./internal/console/screenshots -out docs/console
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xborder/xborder/internal/console"
	"github.com/xborder/xborder/internal/console/consoletest"
	"github.com/xborder/xborder/internal/httpapi"
)

func main() {
	out := flag.String("out", "docs/console", "directory to write the PNG files to (`DIR`)")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintf(os.Stderr, "screenshots: error: %v\n", err)
		if errors.Is(err, consoletest.ErrNoBrowser) {
			fmt.Fprintln(os.Stderr, "screenshots: hint: apt-get install -y chromium")
		}
		os.Exit(1)
	}
}

func run(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	fake, err := consoletest.NewFake(time.Now(), 60, []string{"+66812345678"}, true)
	if err != nil {
		return err
	}
	fake.HoldVictims("+447700900999")
	c, err := console.New(console.Config{Backend: fake, LedgerKey: fake.LedgerKey, Agency: consoletest.Agency})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	b, err := consoletest.NewBrowser(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	tab := func() (*consoletest.Tab, error) { return b.Tab(base) }
	shot := func(t *consoletest.Tab, name string) error {
		png, err := t.Screenshot()
		if err != nil {
			return fmt.Errorf("screenshot %s: %w", name, err)
		}
		p := filepath.Join(out, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			return err
		}
		fmt.Println(p)
		return nil
	}
	click := func(t *consoletest.Tab, sel, after string) error {
		return t.Do(chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(after)))
	}

	anon, err := tab()
	if err != nil {
		return err
	}
	if err := anon.Open("/ui/signin", "#token"); err != nil {
		return err
	}
	if err := shot(anon, "signin"); err != nil {
		return err
	}
	// A one-time sign-in link, as `xborder ui-link --user ivy` makes it:
	// its page asks for one press of the button.
	link, err := c.Link(ctx, "ivy", 0)
	if err != nil {
		return err
	}
	lt0, err := tab()
	if err != nil {
		return err
	}
	if err := lt0.Open(link, "main form button"); err != nil {
		return err
	}
	if err := shot(lt0, "link"); err != nil {
		return err
	}

	// Investigator asks; the query waits for an approver.
	ivy, err := tab()
	if err != nil {
		return err
	}
	if err := ivy.SignIn(consoletest.Token("ivy")); err != nil {
		return err
	}
	ask := [][2]string{{"#values", "+66 81 234 5678\n+44 7700 900999\n+33 6 12 34 56 78"}, {"#case", "OP-7"},
		{"#basis", "MSA 2015 s.1"}, {"#offence", "thb"}, {"#purpose", "identify victims"}}
	for _, f := range ask {
		if err := ivy.Do(chromedp.SetValue(chromedp.CSS(f[0]), f[1])); err != nil {
			return err
		}
	}
	// A safeguarding query: it also asks the partner's victims' records.
	if err := ivy.Do(chromedp.Click(chromedp.CSS("#mode-safeguarding"))); err != nil {
		return err
	}
	if err := shot(ivy, "query"); err != nil {
		return err
	}
	if err := click(ivy, "main form button[type=submit]", "#query-status"); err != nil {
		return err
	}
	if err := shot(ivy, "query-pending"); err != nil {
		return err
	}
	id, err := ivy.Text("#query-id")
	if err != nil {
		return err
	}
	key, err := ivy.Text("#case-key")
	if err != nil {
		return err
	}

	// Approver sees it and approves it.
	alan, err := tab()
	if err != nil {
		return err
	}
	if err := alan.SignIn(consoletest.Token("alan")); err != nil {
		return err
	}
	if err := shot(alan, "approvals"); err != nil {
		return err
	}
	if err := click(alan, "main table button.approve", "main p[role=status]"); err != nil {
		return err
	}

	// Investigator runs the approved query: one partner answers at
	// once, the other is held, so the progress page shows both states;
	// then the result, with the hits as her lines.
	if err := ivy.Open("/ui/query?id="+id+"&case_key="+key+"&mode=safeguarding", "#values"); err != nil {
		return err
	}
	release := fake.Hold()
	if err := ivy.Fill(ask, "main form button[type=submit]", "#progress"); err != nil {
		release()
		return err
	}
	err = shot(ivy, "query-progress")
	release()
	if err != nil {
		return err
	}
	if err := ivy.Do(chromedp.WaitVisible(chromedp.CSS("#query-status"))); err != nil {
		return err
	}
	if err := shot(ivy, "query-result"); err != nil {
		return err
	}
	// She follows up TH's first hit; TH answers; she reads the answer.
	if err := ivy.Fill([][2]string{{"#fu-basis-TH", "2006/960/JHA art. 4"}, {"#fu-purpose-TH", "reach the officer in charge"}},
		`#followup-TH input[name=hit][value="1"]`, "#followup-TH"); err != nil {
		return err
	}
	if err := click(ivy, "#followup-TH button[type=submit]", "#followup-status"); err != nil {
		return err
	}
	fid, err := ivy.Text("#followup-id")
	if err != nil {
		return err
	}
	fake.AnswerSent(fid)
	if err := ivy.Open("/ui/followups/"+fid, "#followup-answer"); err != nil {
		return err
	}
	if err := shot(ivy, "followup"); err != nil {
		return err
	}
	if err := ivy.Open("/ui/followups", "#followups"); err != nil {
		return err
	}
	if err := shot(ivy, "followups"); err != nil {
		return err
	}
	if err := ivy.Open("/ui/queries", "main h1"); err != nil {
		return err
	}
	if err := shot(ivy, "queries"); err != nil {
		return err
	}

	// Auditor: the ledger, an entry verified, the same entry with a
	// tampered proof, the checkpoints.
	ada, err := tab()
	if err != nil {
		return err
	}
	if err := ada.SignIn(consoletest.Token("ada")); err != nil {
		return err
	}
	if err := shot(ada, "ledger"); err != nil {
		return err
	}
	if err := ada.Open("/ui/ledger/12?purpose=audit+2026%2F7", "#proof-result"); err != nil {
		return err
	}
	if err := shot(ada, "entry-verified"); err != nil {
		return err
	}
	fake.Tamper(true)
	if err := ada.Open("/ui/ledger/12?purpose=audit+2026%2F7", "#proof-result"); err != nil {
		return err
	}
	if err := shot(ada, "entry-failed"); err != nil {
		return err
	}
	fake.Tamper(false)
	if err := ada.Open("/ui/checkpoints", "#checkpoint-result"); err != nil {
		return err
	}
	if err := shot(ada, "checkpoints"); err != nil {
		return err
	}

	// Admin and steward: status.
	root, err := tab()
	if err != nil {
		return err
	}
	if err := root.SignIn(consoletest.Token("root")); err != nil {
		return err
	}
	if err := shot(root, "status-admin"); err != nil {
		return err
	}
	if err := root.Open("/ui/policy?case=OP-7", "#budgets"); err != nil {
		return err
	}
	if err := shot(root, "policy"); err != nil {
		return err
	}
	// Liaison: the follow-up inbox, some answered, one past its deadline.
	lia := consoletest.Users[5]
	for _, f := range []struct {
		partner, kind string
		ago, due      time.Duration
		urgent        bool
		ref, contact  string
		answer        *httpapi.AnswerFollowup
	}{
		{"TH", "phone", 3 * 24 * time.Hour, 4 * 24 * time.Hour, false, "GB-2026-0412", "DS Patel, +44 20 7946 0412", &httpapi.AnswerFollowup{Share: []string{"reference", "contact"}, Handling: "H2"}},
		{"FR", "phone", 8 * 24 * time.Hour, -1 * 24 * time.Hour, false, "GB-2026-0377", "DC Okafor, +44 20 7946 0377", &httpapi.AnswerFollowup{Refuse: true, Reason: "the case is closed"}},
		{"TH", "email", 10 * time.Hour, -2 * time.Hour, true, "GB-2026-0450", "DS Patel, +44 20 7946 0412", nil},
		{"TH", "phone", 2 * time.Hour, 6 * time.Hour, true, "GB-2026-0451", "DI Hughes, +44 20 7946 0451", nil},
		{"FR", "phone", time.Hour, 6 * 24 * time.Hour, false, "GB-2026-0460", "DS Lee, +44 20 7946 0460", nil},
	} {
		id := fake.AddFollowup(f.partner, f.kind, f.ago, f.due, f.urgent, f.ref, f.contact)
		if f.answer != nil {
			if _, err := fake.AnswerFollowup(ctx, lia, id, *f.answer); err != nil {
				return err
			}
		}
	}
	lt, err := tab()
	if err != nil {
		return err
	}
	if err := lt.SignIn(consoletest.Token(lia.Name)); err != nil {
		return err
	}
	if err := shot(lt, "inbox"); err != nil {
		return err
	}

	sam, err := tab()
	if err != nil {
		return err
	}
	if err := sam.SignIn(consoletest.Token("sam")); err != nil {
		return err
	}
	if err := shot(sam, "status-steward"); err != nil {
		return err
	}

	// Auditor: every follow-up, sent and received (the liaison's above).
	if err := ada.Open("/ui/audit/followups", "#audit-in"); err != nil {
		return err
	}
	return shot(ada, "audit-followups")
}

package testnet

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestUpConsoleLinks checks that up's console table holds a one-time
// sign-in link per agency and role, and that the investigator's signs her
// in on the replica's console.
func TestUpConsoleLinks(t *testing.T) {
	var progress bytes.Buffer
	n, err := Up(context.Background(), Config{Dir: t.TempDir(), Binary: xborder, Agencies: 1, Replicas: 1, Holdings: 20, Progress: &progress})
	if err != nil {
		t.Fatalf("Up: %v\n%s", err, progress.String())
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var out bytes.Buffer
	n.PrintConsole(context.Background(), &out)
	a := n.Agencies[0]
	links := map[string]string{}
	for _, role := range append([]string{"admin"}, userRoles...) {
		m := regexp.MustCompile(`(?m)^` + a.Code + ` +` + role + ` +(http://\S+/ui/link\?s=\S+)$`).FindStringSubmatch(out.String())
		if m == nil {
			t.Errorf("no console link for %s %s in\n%s", a.Code, role, out.String())
			continue
		}
		links[role] = m[1]
	}
	inv, ok := links["investigator"]
	if !ok {
		return
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	read := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	_, page := read(hc.Get(inv))
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	u, err := url.Parse(inv)
	if csrf == nil || err != nil {
		t.Fatalf("link page %s (%v) has no form:\n%s", inv, err, page)
	}
	resp, page := read(hc.PostForm(strings.Replace(inv, "?"+u.RawQuery, "", 1), url.Values{"csrf": {csrf[1]}, "s": {u.Query().Get("s")}}))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/query" {
		t.Errorf("signing in with the investigator's link = %d at %s; want the new-query page:\n%s", resp.StatusCode, resp.Request.URL.Path, page)
	}
}

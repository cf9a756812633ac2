package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// inboxBackend serves the liaison's routes: follow-up f-1 is open, f-2
// answered; every other Backend method panics.
type inboxBackend struct {
	httpapi.Backend
	got []httpapi.AnswerFollowup
}

func (b *inboxBackend) Authenticate(tok string) (httpapi.User, error) {
	if tok != "liaison-token" {
		return httpapi.User{}, httpapi.ErrUnauthorized
	}
	return httpapi.User{Name: "lia", Role: "liaison"}, nil
}

func (b *inboxBackend) Authorize(u httpapi.User, action string) error { return nil }

var inboxNow = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func (b *inboxBackend) FollowupInbox(ctx context.Context, u httpapi.User) ([]httpapi.FollowupInboxItem, error) {
	return []httpapi.FollowupInboxItem{
		{ID: "f-1", Partner: "GB", RequestID: "r-1", Kind: "phone", Mode: "enforcement", Urgent: true, Basis: "art. 4",
			Purpose: "reach the officer", Deadline: inboxNow.Add(-time.Hour), Overdue: true, State: "open",
			Hits: []httpapi.FollowupHit{{Hit: 1, Reach: "open", Records: []httpapi.FollowupRecord{{Class: "suspect", Reference: "TH-1", Contact: "desk 1", Handling: "H2"}}},
				{Hit: 2, Reach: "open", Records: []httpapi.FollowupRecord{}}}},
		{ID: "f-2", Partner: "DE", Kind: "email", Mode: "enforcement", Deadline: inboxNow.Add(48 * time.Hour), State: "refused", Actor: "user:lia",
			Answer: &httpapi.FollowupAnswer{Outcome: "refused", Reason: "closed case"}},
	}, nil
}

func (b *inboxBackend) AnswerFollowup(ctx context.Context, u httpapi.User, id string, a httpapi.AnswerFollowup) (httpapi.FollowupInboxItem, error) {
	if id != "f-1" {
		return httpapi.FollowupInboxItem{}, fmt.Errorf("no follow-up %s: %w", id, httpapi.ErrNotFound)
	}
	b.got = append(b.got, a)
	it := httpapi.FollowupInboxItem{ID: id, Partner: "GB", Hits: make([]httpapi.FollowupHit, 2), State: "shared",
		Answer: &httpapi.FollowupAnswer{Outcome: "shared", Handling: a.Handling, Digest: "abcd",
			Shared: []httpapi.FollowupSharedItem{{Hit: 1, Reference: "TH-1"}}}}
	if a.Refuse {
		it.State, it.Answer = "refused", &httpapi.FollowupAnswer{Outcome: "refused", Reason: a.Reason, Digest: "ef01"}
	}
	return it, nil
}

// TestFollowupInboxCLI: the liaison's inbox is printed by deadline with
// each hit's records, or as JSON; 'followup answer' checks its flags
// (exit 2 before anything is sent), sends the decision and prints it.
func TestFollowupInboxCLI(t *testing.T) {
	b := &inboxBackend{}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Backend: b}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "liaison.token")
	if err := os.WriteFile(tok, []byte("liaison-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cf := &clientFlags{api: srv.URL, tokenFile: tok}
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}

	t.Run("inbox", func(t *testing.T) {
		out.Reset()
		items, err := (&httpapi.Client{BaseURL: srv.URL, Token: "liaison-token"}).FollowupInbox(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		printInbox(&out, items, inboxNow)
		for _, want := range []string{"f-1  GB phone enforcement urgent  deadline 2026-12-05T11:00:00Z (OVERDUE by 1h0m0s)",
			"#1 open suspect  ref TH-1  contact desk 1  handling H2", "#2 open: no record held",
			"f-2  DE email enforcement  deadline 2026-12-07T12:00:00Z (refused by user:lia)", "answer: refused: closed case"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("inbox output lacks %q:\n%s", want, out.String())
			}
		}
		out.Reset()
		if err := runFollowupsInbox(context.Background(), e, cf, "", true); err != nil || !strings.Contains(out.String(), `"id": "f-2"`) {
			t.Errorf("runFollowupsInbox(--json) = %v:\n%s", err, out.String())
		}
	})

	t.Run("answer", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"f-1", "--share", "reference,contact", "--handling", "H2", "--message", "call first"}, 0, "shared 1 of 2 hits of follow-up f-1 with GB under H2"},
			{[]string{"f-1", "--refuse", "--reason", "closed case"}, 0, "refused follow-up f-1 of GB"},
			{[]string{"f-1", "--share", "reference"}, exitUsage, ""},
			{[]string{"f-1", "--refuse"}, exitUsage, ""},
			{[]string{"f-1", "--refuse", "--reason", "r", "--handling", "H1"}, exitUsage, ""},
			{[]string{"f-1", "--share", "value", "--handling", "H1"}, exitUsage, ""},
			{[]string{"f-9", "--refuse", "--reason", "r"}, exitInvalid, ""},
		} {
			out.Reset()
			before := len(b.got)
			cmd := newFollowupAnswerCmd(e, cf)
			cmd.SetArgs(tc.args)
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			err := cmd.Execute()
			var ce *cliError
			code := 0
			if errors.As(err, &ce) {
				code = ce.code
			} else if err != nil {
				code = -1
			}
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("followup answer %v: exit %d (%v), output %q; want %d with %q", tc.args, code, err, out.String(), tc.code, tc.want)
			}
			if tc.code == exitUsage && len(b.got) != before {
				t.Errorf("followup answer %v: sent with bad flags", tc.args)
			}
		}
		if len(b.got) != 2 || b.got[0].Message != "call first" || len(b.got[0].Share) != 2 || b.got[1].Reason != "closed case" {
			t.Errorf("decisions sent = %+v", b.got)
		}
	})
}

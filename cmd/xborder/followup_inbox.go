package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/internal/httpapi"
)

// The owner's side of step 2 (issue 23): the liaison's inbox and answers.
// 'xborder followups' and 'xborder followup' are the querier's commands
// (followup.go); they call runFollowupsInbox for --inbox and add
// newFollowupAnswerCmd as 'followup answer'.

const followupAnswerLong = `Answer decides a partner's follow-up of hits on this agency's records
(liaison): share the records' reference and/or contact point under a
handling code, with a message, or refuse with a reason. The answer is
signed with the agency key, kept in the audit group's records, and served
to the partner when its node polls; the ledger gets a followup_answer entry
(outcome, handling code, the answer's digest). A follow-up is answered
once. 'xborder followups --inbox' lists the follow-ups and their hits.`

// followupAnswerFlags are the flags of 'xborder followup answer'.
type followupAnswerFlags struct {
	dir, share, handling, message, reason string
	refuse                                bool
}

// newFollowupAnswerCmd is 'xborder followup answer FOLLOWUP-ID'.
func newFollowupAnswerCmd(e *env, cf *clientFlags) *cobra.Command {
	var f followupAnswerFlags
	cmd := &cobra.Command{
		Use:   "answer FOLLOWUP-ID (--share reference,contact --handling H0..H3 [--message TEXT] | --refuse --reason TEXT)",
		Short: "Answer or refuse a partner's follow-up (liaison)",
		Long:  followupAnswerLong,
		Example: `  xborder followup answer 5f1c0e3a9b7d2468ace0f1e2d3c4b5a6 --share reference,contact --handling H2 --message 'call the desk before 18:00' --token-file liaison.token
  xborder followup answer 5f1c0e3a9b7d2468ace0f1e2d3c4b5a6 --refuse --reason 'the case is closed under national law' --token-file liaison.token`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runFollowupAnswer(c.Context(), e, cf, args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.share, "share", "", "what to share of the records hit: reference, contact or reference,contact")
	cmd.Flags().StringVar(&f.handling, "handling", "", "handling code `H0`..H3 of what is shared")
	cmd.Flags().StringVar(&f.message, "message", "", "a message for the partner's investigator")
	cmd.Flags().BoolVar(&f.refuse, "refuse", false, "refuse the follow-up (give --reason)")
	cmd.Flags().StringVar(&f.reason, "reason", "", "why the follow-up is refused, for the partner")
	cmd.Flags().StringVar(&f.dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	return cmd
}

// runFollowupAnswer sends the liaison's decision on follow-up id and
// prints it.
func runFollowupAnswer(ctx context.Context, e *env, cf *clientFlags, id string, f followupAnswerFlags) error {
	a := httpapi.AnswerFollowup{Handling: f.handling, Message: f.message, Refuse: f.refuse, Reason: f.reason}
	switch {
	case f.refuse && (f.share != "" || f.handling != ""):
		return usageError("give either --refuse --reason TEXT, or --share and --handling", "followup answer: --refuse shares nothing")
	case f.refuse && strings.TrimSpace(f.reason) == "":
		return usageError("give --reason TEXT: why, for the partner", "followup answer: --refuse without --reason")
	case !f.refuse && f.share == "":
		return usageError("give --share reference,contact and --handling H0..H3, or --refuse --reason TEXT", "followup answer: nothing to share")
	case !f.refuse && f.handling == "":
		return usageError("give --handling H0..H3 for what is shared", "followup answer: no --handling given")
	}
	if f.share != "" {
		for s := range strings.SplitSeq(f.share, ",") {
			a.Share = append(a.Share, strings.TrimSpace(s))
		}
	}
	if err := a.Check(); err != nil {
		return usageError("", "followup answer: %v", err)
	}
	cl, err := apiClient(cf, f.dir)
	if err != nil {
		return err
	}
	it, err := cl.AnswerFollowup(ctx, id, a)
	if err != nil {
		return apiError(err)
	}
	if it.Answer == nil {
		return exitError(exitInvalid, fmt.Errorf("followup answer: the node returned no answer for %s", id), "")
	}
	if it.Answer.Outcome == "refused" {
		fmt.Fprintf(e.stdout, "refused follow-up %s of %s\n", it.ID, it.Partner)
	} else {
		fmt.Fprintf(e.stdout, "shared %d of %d hits of follow-up %s with %s under %s\n", len(it.Answer.Shared), len(it.Hits),
			it.ID, it.Partner, it.Answer.Handling)
	}
	fmt.Fprintf(e.stdout, "answer digest %s\n", it.Answer.Digest)
	return nil
}

// runFollowupsInbox prints the liaison's inbox ('xborder followups
// --inbox'), earliest deadline first, or writes it as JSON.
func runFollowupsInbox(ctx context.Context, e *env, cf *clientFlags, dir string, asJSON bool) error {
	cl, err := apiClient(cf, dir)
	if err != nil {
		return err
	}
	items, err := cl.FollowupInbox(ctx)
	if err != nil {
		return apiError(err)
	}
	if asJSON {
		return writeJSON(e, items)
	}
	printInbox(e.stdout, items, time.Now())
	return nil
}

// printInbox writes one block per follow-up: its header line, the basis
// and purpose, and one line per record of each hit.
func printInbox(w io.Writer, items []httpapi.FollowupInboxItem, now time.Time) {
	if len(items) == 0 {
		fmt.Fprintln(w, "no follow-ups")
		return
	}
	for _, it := range items {
		due := "due in " + it.Deadline.Sub(now).Round(time.Minute).String()
		switch {
		case it.State != "open":
			due = it.State + " by " + it.Actor
		case it.Overdue:
			due = "OVERDUE by " + now.Sub(it.Deadline).Round(time.Minute).String()
		}
		urgent := ""
		if it.Urgent {
			urgent = " urgent"
		}
		fmt.Fprintf(w, "%s  %s %s %s%s  deadline %s (%s)\n", it.ID, it.Partner, it.Kind, it.Mode, urgent,
			it.Deadline.UTC().Format(time.RFC3339), due)
		fmt.Fprintf(w, "  request %s  basis: %s  purpose: %s\n", it.RequestID, it.Basis, it.Purpose)
		for _, h := range it.Hits {
			if len(h.Records) == 0 {
				fmt.Fprintf(w, "  #%d %s: no record held\n", h.Hit, h.Reach)
			}
			for _, r := range h.Records {
				if r.Changed {
					fmt.Fprintf(w, "  #%d %s %s: record removed or changed since\n", h.Hit, h.Reach, r.Class)
					continue
				}
				fmt.Fprintf(w, "  #%d %s %s  ref %s  contact %s  handling %s\n", h.Hit, h.Reach, r.Class,
					orDash(r.Reference), orDash(r.Contact), orDash(r.Handling))
			}
		}
		if a := it.Answer; a != nil {
			if a.Outcome == "refused" {
				fmt.Fprintf(w, "  answer: refused: %s\n", a.Reason)
			} else {
				fmt.Fprintf(w, "  answer: shared %d hits under %s\n", len(a.Shared), a.Handling)
			}
		}
	}
}

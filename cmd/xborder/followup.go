package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/internal/httpapi"
)

func init() { commands = append(commands, newFollowupCmd, newFollowupsCmd) }

// 'xborder followup' and 'xborder followups' carry both sides of step 2:
// the querier's verbs here, the liaison's (followup answer, followups
// --inbox) in followup_inbox.go.

const followupLong = `Followup asks a partner agency for more about hits of a query you made: who
holds the case, under which reference, whether it will share more (step 2,
docs/followup.md). Name the query (with --partner) or the partner's request ID
that 'xborder query' printed, and the hits by the numbers it printed beside
them (#N, per partner). Only hits can be named: the node sends, for each, a tag
derived from that hit's PRF output, from which the partner learns which of its
records was hit and nothing else of the query. A number that is no hit is
refused before anything is sent.

Only the investigator who made the query (or an approver of its kind) may
follow it up, within the follow-up window (30 days by default), and the
policy decides (action followup). Both ledgers record the follow-up under one
follow-up ID (followup_out here). The partner's liaison answers within its
deadline (8 hours urgent, 7 days otherwise): your node polls for the answer;
'xborder followup show ID' shows it, to you and to auditors only.

Exit status: 0 acknowledged; 1 invalid input (a number that is no hit); 2
usage; 3 denied (by policy, here or at the partner); 4 unavailable; 5 the
partner's acknowledgement did not verify.`

const followupExample = `  xborder followup q-3f2a9c0d4e5b6a71 --partner TH --hit 1 --hit 2 --basis "MLA 2024/17" \
      --purpose "identify the case officer" --token-file ivan.token
  xborder followup 9b0c4e6f1a2d3c4b5e6f7a8b9c0d1e2f --hit 1 --basis "Art. 10 TFA" --purpose "contact" --urgent
  xborder followup show 5d1e0c2b3a4f5e6d7c8b9a0f1e2d3c4b
  xborder followups`

func newFollowupCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, partner string
	var req httpapi.FollowupRequest
	var jsonOut bool
	cmd := &cobra.Command{
		Use:     "followup QUERY-ID|REQUEST-ID --hit N [--hit M ...] --basis TEXT --purpose TEXT [--partner CC] [--urgent] [--json]",
		Short:   "Follow up hits of a query at the partner that holds them",
		Long:    followupLong,
		Example: followupExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case len(req.Hits) == 0:
				return usageError("give --hit N for each hit to follow up, the numbers xborder query printed (#N)", "followup: no --hit given")
			case strings.TrimSpace(req.Basis) == "":
				return usageError("give --basis TEXT, the legal basis of the follow-up", "followup: no --basis given")
			case strings.TrimSpace(req.Purpose) == "":
				return usageError("give --purpose TEXT, what the follow-up is for", "followup: no --purpose given")
			case strings.HasPrefix(args[0], "q-") && partner == "":
				return usageError("give --partner CC, the partner whose hits you follow up", "followup: a query ID without --partner")
			}
			for _, n := range req.Hits {
				if n < 1 {
					return usageError("hits are numbered from 1, as xborder query prints them (#N)", "followup: --hit %d", n)
				}
			}
			req.Partner = strings.ToUpper(strings.TrimSpace(partner))
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			withTimeout(cl, 3*time.Minute) // the node tries every replica of the partner
			rec, err := cl.Followup(c.Context(), args[0], req)
			if err != nil {
				return followupAPIError(err)
			}
			if jsonOut {
				err = writeJSON(e, rec)
			} else {
				err = writeFollowupText(e.stdout, rec)
			}
			if err != nil {
				return err
			}
			return followupExit(rec)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	f.StringVar(&partner, "partner", "", "the partner `CC` whose hits you follow up (required with a query ID)")
	f.IntSliceVar(&req.Hits, "hit", nil, "the number `N` of a hit to follow up, as xborder query printed it (repeat, or N,M)")
	f.StringVar(&req.Basis, "basis", "", "legal basis of the follow-up")
	f.StringVar(&req.Purpose, "purpose", "", "purpose of the follow-up")
	f.BoolVar(&req.Urgent, "urgent", false, "ask the urgent deadline (8 hours by default)")
	f.BoolVar(&jsonOut, "json", false, "write the follow-up record as JSON")
	cmd.AddCommand(newFollowupShowCmd(e, cf), newFollowupAnswerCmd(e, cf))
	return cmd
}

func newFollowupShowCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "show FOLLOWUP-ID [--json]",
		Short: "Show a follow-up you sent and the partner's answer",
		Long: `Show shows a follow-up and, once it came, the partner's signed answer, verified
again under the partner's pinned key: the references, contact points and
handling codes it shares per hit (numbered as xborder query printed them), or
its refusal with the reason. The node asks the partner first when the answer
is still due. Only the investigator who sent the follow-up and auditors may
read it; never paste the answer into a ticket of another handling level.`,
		Example: `  xborder followup show 5d1e0c2b3a4f5e6d7c8b9a0f1e2d3c4b --token-file ivan.token`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			withTimeout(cl, 2*time.Minute)
			rec, err := cl.SentFollowup(c.Context(), args[0], true)
			if err != nil {
				return followupAPIError(err)
			}
			if jsonOut {
				return writeJSON(e, rec)
			}
			return writeFollowupText(e.stdout, rec)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "write the follow-up and its answer as JSON")
	return cmd
}

func newFollowupsCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir string
	var jsonOut, inbox bool
	cmd := &cobra.Command{
		Use:   "followups [--inbox] [--json]",
		Short: "List your follow-ups (or, with --inbox, the partners' follow-ups for the liaison)",
		Long: `Followups lists the follow-ups you sent (an auditor: every follow-up this
agency sent), newest first, with their state and deadline; an open follow-up
past its deadline is marked overdue. 'xborder followup show ID' shows an
answer. With --inbox, the liaison's inbox: the partners' follow-ups of this
agency's records, sorted by deadline.`,
		Example: `  xborder followups --token-file ivan.token
  xborder followups --inbox --token-file liaison.token`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if inbox {
				return runFollowupsInbox(c.Context(), e, cf, dir, jsonOut)
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			recs, err := cl.Followups(c.Context())
			if err != nil {
				return followupAPIError(err)
			}
			if jsonOut {
				return writeJSON(e, recs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tPARTNER\tQUERY\tHITS\tDEADLINE\tUSER\tCREATED")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, followupStatus(r), r.Partner, r.Query, hitList(r.Hits),
					timeOrDash(r.Deadline), r.User, r.Created.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "write the list as JSON")
	cmd.Flags().BoolVar(&inbox, "inbox", false, "the liaison's inbox of partners' follow-ups, by deadline")
	return cmd
}

// followupAPIError maps an API error: a number that is no hit (400) is
// invalid input (exit 1), not a usage mistake.
func followupAPIError(err error) error {
	var se *httpapi.Error
	if errors.As(err, &se) && se.Status == http.StatusBadRequest {
		return exitError(exitInvalid, err, "xborder query printed the hits' numbers (#N) per partner; only those can be followed up")
	}
	return apiError(err)
}

// withTimeout lets cl wait d for an answer.
func withTimeout(cl *httpapi.Client, d time.Duration) {
	if cl.HTTP == nil {
		cl.HTTP = &http.Client{}
	}
	cl.HTTP.Timeout = d
}

// followupExit is the exit code of a follow-up's state.
func followupExit(rec httpapi.SentFollowup) error {
	switch rec.Status {
	case httpapi.FollowupDenied:
		return exitError(exitDenied, fmt.Errorf("followup %s: denied by %s: %s", rec.ID, deniedBy(rec), rec.Reason), "")
	case httpapi.FollowupFailed:
		code := exitUnavailable
		if strings.Contains(rec.Reason, "did not verify") {
			code = exitVerify
		}
		return exitError(code, fmt.Errorf("followup %s: %s", rec.ID, rec.Reason), "")
	}
	return nil
}

// deniedBy names who denied rec: this node's policy (the follow-up has no
// deadline and was refused before it was sent) or the partner.
func deniedBy(rec httpapi.SentFollowup) string {
	switch rec.Reason {
	case "not_permitted", "kind_not_allowed", "missing_legal_basis", "missing_purpose", "unknown_partner":
		return "the policy here or at " + rec.Partner
	}
	return rec.Partner
}

func followupStatus(r httpapi.SentFollowup) string {
	if r.Overdue {
		return r.Status + " (overdue)"
	}
	return r.Status
}

func hitList(hits []int) string {
	s := make([]string, len(hits))
	for i, h := range hits {
		s[i] = "#" + strconv.Itoa(h)
	}
	return strings.Join(s, ",")
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// writeFollowupText writes a follow-up and its answer for a person.
func writeFollowupText(w io.Writer, r httpapi.SentFollowup) error {
	urgent := ""
	if r.Urgent {
		urgent = ", urgent"
	}
	fmt.Fprintf(w, "followup %s: %s at %s%s\n", r.ID, followupStatus(r), r.Partner, urgent)
	fmt.Fprintf(w, "query %s, request %s, hits %s (%s mode), by %s at %s\n", r.Query, r.RequestID, hitList(r.Hits),
		queryMode(r.Mode), r.User, r.Created.UTC().Format(time.RFC3339))
	if !r.Deadline.IsZero() {
		fmt.Fprintf(w, "answer due by %s\n", r.Deadline.UTC().Format(time.RFC3339))
	}
	if r.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", r.Reason)
	}
	var idx []string
	if r.OutIndex != nil {
		idx = append(idx, fmt.Sprint(*r.OutIndex))
	}
	if r.ResultIndex != nil {
		idx = append(idx, fmt.Sprint(*r.ResultIndex))
	}
	if len(idx) > 0 {
		fmt.Fprintf(w, "ledger: %s\n", strings.Join(idx, ","))
	}
	a := r.Answer
	if a == nil {
		return nil
	}
	switch a.Outcome {
	case "refused":
		fmt.Fprintf(w, "answer of %s: refused: %s\n", r.AnsweredAt.UTC().Format(time.RFC3339), a.Reason)
	default:
		fmt.Fprintf(w, "answer of %s: shared under handling %s\n", r.AnsweredAt.UTC().Format(time.RFC3339), a.Handling)
		for _, s := range a.Shared {
			fmt.Fprintf(w, "  hit #%d: reference %s, contact %s", s.Hit, orDash(s.Reference), orDash(s.Contact))
			if s.Handling != "" {
				fmt.Fprintf(w, ", handling %s", s.Handling)
			}
			fmt.Fprintln(w)
		}
	}
	if a.Message != "" {
		fmt.Fprintf(w, "message: %s\n", a.Message)
	}
	fmt.Fprintf(w, "answer digest (both ledgers): %s\n", a.Digest)
	return nil
}

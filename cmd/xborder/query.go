package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
)

func init() { commands = append(commands, newQueryCmd) }

const queryLong = `Query asks partner agencies whether they hold the identifiers of FILE (one
per line, or standard input for -), by private set intersection: the values
are canonicalised here (as 'xborder canon' does; any invalid line is
reported with its number and nothing is sent), and the node blinds them, so
no identifier leaves it. Partners learn the kind, the padded size, the case
reference, legal basis, offence and purpose; never the values nor whether
anything hit.

Before anything is sent the node checks its own policy (action match), and
commits one outbound entry per partner to its audit ledger under the request
ID it sends; the partner commits its own entry under the same ID before it
evaluates. A query the policy wants approved waits for an approver
('xborder approve QUERY-ID'); this command waits up to --wait for the
approval and then runs it (or run it later with --id QUERY-ID, the
--case-key it printed, and the same flags and FILE: the approval binds the
very values, under that key, and is good for one run).

--mode enforcement (the default) asks partners' open reach only: records
they hold of suspects or of unknown class. --mode safeguarding also asks the
victim and witness records the agreement with each partner opens; it always
waits for an approver, and a hit on a victim or witness record is shown as
such, with the partner's handling code and instruction: it is for the care
of that person, never for enforcement (docs/victims.md).

The output lists per partner the hits (your own input lines, shown only
here, each with the reach that answered it and its number #N for 'xborder
followup'), the counts, denials and failures with their reasons, and the ledger
indexes of the outbound and result entries. The case key printed is the key
of the commitment to the query set on every result entry: keep it in the
case file, the node does not.

Exit status: 0 every partner answered; 1 invalid input; 2 usage; 3 denied
(by policy, here or at a partner); 4 unavailable (no quorum here, or a
partner unreachable or its set out of date); 5 an answer did not verify.`

const queryExample = `  xborder query --kind phone --region GB --case OP-1 --basis "Art. 10 TFA" --offence thb \
      --purpose "identify recruiters" suspects.txt
  xborder query --kind email --partners TH,DE --case OP-1 --basis "MLA 2024/17" --offence thb --json mails.txt
  xborder query --mode safeguarding --kind phone --partners TH --case OP-1 --basis "Art. 10 TFA" --offence thb \
      --purpose "find the victims of OP-1" numbers.txt`

// queryLine is one valid input line.
type queryLine struct {
	line int
	text string
}

func newQueryCmd(e *env, cf *clientFlags) *cobra.Command {
	var dir, kind, region, partners, id, caseKey, reaches string
	var req httpapi.QueryRequest
	var jsonOut bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:     "query --kind K --case REF --basis TEXT --offence CODE [--mode enforcement|safeguarding] [--purpose TEXT] [--urgent] [--partners all|CC,CC] [--region CC] [--json] FILE",
		Short:   "Ask partner agencies whether they hold these identifiers",
		Long:    queryLong,
		Example: queryExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case kind == "":
				return usageError("give --kind, one of "+canonKindList(), "query: no --kind given")
			case req.Case == "":
				return usageError("give --case REF, the case reference the query serves", "query: no --case given")
			case req.Basis == "":
				return usageError("give --basis TEXT, the legal basis of the query", "query: no --basis given")
			case req.Offence == "":
				return usageError("give --offence CODE, one of the policy's offences (thb, ...)", "query: no --offence given")
			case req.Mode != "enforcement" && req.Mode != "safeguarding":
				return usageError("give --mode enforcement or --mode safeguarding (docs/victims.md)", "query: mode %q is not a query mode", req.Mode)
			}
			k, err := ident.ParseKind(kind)
			if err != nil {
				return usageError("run 'xborder canon --help' for the kinds", "query: %v", err)
			}
			opt := ident.Options{Region: region}
			if err := opt.Validate(); err != nil {
				return usageError("give an ISO 3166 alpha-2 country code, such as GB", "query: --region %q: %v", region, err)
			}
			if partners != "" && partners != "all" {
				for _, p := range strings.Split(partners, ",") {
					req.Partners = append(req.Partners, strings.ToUpper(strings.TrimSpace(p)))
				}
			}
			if reaches != "" {
				for _, r := range strings.Split(reaches, ",") {
					req.Reaches = append(req.Reaches, strings.ToLower(strings.TrimSpace(r)))
				}
			}
			if id != "" && caseKey == "" {
				return usageError("give --case-key KEY, printed when the query was made", "query: --id without --case-key")
			}
			req.Kind, req.ID, req.CaseKey = k.String(), id, caseKey
			lines, err := readQueryFile(c.Context(), e, args[0], k, opt, &req)
			if err != nil {
				return err
			}
			cl, err := apiClient(cf, dir)
			if err != nil {
				return err
			}
			// A query waits for every partner (each bounded by the node).
			cl.HTTP = &http.Client{Timeout: 5 * time.Minute}
			res, err := cl.Query(c.Context(), req)
			if err != nil {
				return apiError(err)
			}
			if res.Status == "pending" {
				fmt.Fprintf(e.stderr, "xborder: query %s waits for an approver: ask one to run 'xborder approve %s'\n", res.ID, res.ID)
				if err := waitApproval(c.Context(), cl, res.ID, res.CaseKey, wait); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "xborder: query %s approved; running it\n", res.ID)
				req.ID, req.CaseKey = res.ID, res.CaseKey
				if res, err = cl.Query(c.Context(), req); err != nil {
					return apiError(err)
				}
			}
			refused, kindRefused := partnerRefusals(&res)
			if jsonOut {
				err = writeQueryJSON(e.stdout, res, lines)
			} else {
				err = writeQueryText(e.stdout, res, lines)
			}
			if err != nil {
				return exitError(exitInvalid, fmt.Errorf("query: write output: %w", err), "")
			}
			if len(refused) > 0 && kindRefused {
				return exitError(exitDenied,
					fmt.Errorf("query: no partner asked lets this agency ask %s: %s refused to sync their %s sets to it",
						res.Kind, strings.Join(refused, ", "), res.Kind),
					fmt.Sprintf("your policy lists them for %s, their policies do not: ask another kind, or ask them to allow %s for your agency", res.Kind, res.Kind))
			}
			if len(refused) > 0 {
				return exitError(exitDenied, fmt.Errorf("query: every partner part was denied: %s", strings.Join(refused, ", ")),
					"the table above gives each partner's reason and its ledger entry")
			}
			if code := queryExit(res); code != exitOK {
				return silentExit(code)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "data `DIR`ectory of the local node (reads its api.url and admin.token)")
	f.StringVar(&kind, "kind", "", "kind of the values: "+canonKindList())
	f.StringVar(&region, "region", "", "ISO 3166 alpha-2 country the values come from (national phone numbers, documents, addresses)")
	f.StringVar(&req.Case, "case", "", "case reference (recorded on both ledgers)")
	f.StringVar(&req.Basis, "basis", "", "legal basis of the query")
	f.StringVar(&req.Offence, "offence", "", "offence code, one of the policy's offences")
	f.StringVar(&req.Purpose, "purpose", "", "purpose of the query")
	f.StringVar(&req.Mode, "mode", "enforcement", "query `MODE`: enforcement (partners' suspect and unknown records) or safeguarding (also victims and witnesses, as agreed; needs an approver)")
	f.StringVar(&reaches, "reaches", "", "narrow the reaches asked: `REACH,...` of open, victim, witness (default: every reach the mode may ask; enforcement asks open only, and is refused any other)")
	f.BoolVar(&req.Urgent, "urgent", false, "mark the query urgent (may draw on the urgency reserve; never lifts a check)")
	f.StringVar(&partners, "partners", "all", "partners to ask: all (every partner the policy allows for the kind) or CC,CC")
	f.StringVar(&id, "id", "", "run the approved query `QUERY-ID` (same flags and FILE as when it was made)")
	f.StringVar(&caseKey, "case-key", "", "with --id, the case `KEY` printed when the query was made")
	f.BoolVar(&jsonOut, "json", false, "write the result as one JSON object")
	f.DurationVar(&wait, "wait", 15*time.Minute, "how long to wait for an approver when the policy asks for one")
	return cmd
}

// readQueryFile canonicalises every line of name into req.Values and
// returns the lines by value index. Invalid lines are reported on stderr
// as canon reports them, and then the command fails: nothing is sent.
func readQueryFile(ctx context.Context, e *env, name string, k ident.Kind, opt ident.Options, req *httpapi.QueryRequest) ([]queryLine, error) {
	in := e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, exitError(exitInvalid, fmt.Errorf("query: %w", err), "check the file name, or give - to read standard input")
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lines []queryLine
	n, bad := 0, 0
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n++
		text := strings.TrimSuffix(sc.Text(), "\r")
		c, err := ident.Canonical(k, text, opt)
		if err != nil {
			bad++
			fmt.Fprintf(e.stderr, "error: line %d: %v\n", n, err)
			continue
		}
		req.Values = append(req.Values, c)
		lines = append(lines, queryLine{line: n, text: text})
	}
	if err := sc.Err(); err != nil {
		return nil, exitError(exitInvalid, fmt.Errorf("query: read %s after %d lines: %w", name, n, err), "")
	}
	if bad > 0 {
		fmt.Fprintf(e.stderr, "xborder: error: query: %d of %d lines are not valid %s values; nothing was sent\n", bad, n, k)
		return nil, silentExit(exitInvalid)
	}
	if n == 0 {
		return nil, exitError(exitInvalid, fmt.Errorf("query: %s holds no values", name), "")
	}
	return lines, nil
}

// waitApproval polls the query's record until it is approved, or refused
// (exit 3 with the approver's reason).
func waitApproval(ctx context.Context, cl *httpapi.Client, id, caseKey string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		rec, err := cl.QueryRecord(ctx, id)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return apiError(err)
		}
		if err == nil && rec.Status == "refused" { // xborder refuse
			return exitError(exitDenied, fmt.Errorf("query %s: refused by %s: %s", id, rec.Approver, rec.Reason), "")
		}
		if err == nil && rec.Status != "pending" {
			return nil
		}
		select {
		case <-ctx.Done():
			return exitError(exitDenied, fmt.Errorf("query %s: no approval within %s", id, wait),
				fmt.Sprintf("once approved, run the same command with --id %s --case-key %s", id, caseKey))
		case <-t.C:
		}
	}
}

// partnerRefusals keeps only the first line of every partner's reason,
// and returns, when every partner part was denied, each partner with its
// reason ("DE (kind_not_allowed)"), and whether every one of them refused
// the kind itself (kind_not_allowed: its policy does not let this agency
// ask that kind).
func partnerRefusals(res *httpapi.QueryResult) (denied []string, kindRefused bool) {
	kindRefused = true
	for i := range res.Partners {
		p := &res.Partners[i]
		p.Reason, _, _ = strings.Cut(p.Reason, "\n")
		if p.Outcome != httpapi.OutcomeDenied {
			return nil, false
		}
		denied = append(denied, p.Agency+" ("+p.Reason+")")
		kindRefused = kindRefused && p.Reason == string(exchange.ReasonKindNotAllowed)
	}
	return denied, kindRefused && len(denied) > 0
}

// queryExit is the exit code of a finished query: the worst partner part.
func queryExit(res httpapi.QueryResult) int {
	code := exitOK
	for _, p := range res.Partners {
		c := exitOK
		switch p.Outcome {
		case httpapi.OutcomeDenied:
			c = exitDenied
		case httpapi.OutcomeUnavailable, httpapi.OutcomeStale:
			c = exitUnavailable
		case httpapi.OutcomeFailed:
			c = exitVerify
		}
		code = max(code, c)
	}
	return code
}

func ledgerIndexes(p httpapi.PartnerResult) string {
	var s []string
	if p.OutboundIndex != nil {
		s = append(s, fmt.Sprint(*p.OutboundIndex))
	}
	if p.ResultIndex != nil {
		s = append(s, fmt.Sprint(*p.ResultIndex))
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func writeQueryText(w io.Writer, res httpapi.QueryResult, lines []queryLine) error {
	fmt.Fprintf(w, "query %s: %d %s values, padded to %d, %s mode\n", res.ID, res.Values, res.Kind, res.PaddedSize, queryMode(res.Mode))
	fmt.Fprintf(w, "case key (keep it in the case file): %s\n", res.CaseKey)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTNER\tOUTCOME\tHITS\tREQUEST\tLEDGER\tREASON")
	for _, p := range res.Partners {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", p.Agency, p.Outcome, p.HitCount, p.RequestID, ledgerIndexes(p), p.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range res.Partners {
		care := false
		for j, i := range p.Hits {
			if i < 0 || i >= len(lines) {
				continue
			}
			switch reach := hitReach(p, j); reach {
			case "victim", "witness":
				care = true
				fmt.Fprintf(w, "hit %s%s line %d: %s: %s holds it as a %s's: for the %s's care, never for enforcement; handling %s\n",
					p.Agency, hitNumber(p, j), lines[i].line, lines[i].text, p.Agency, reach, reach, orDash(p.Handling))
			default:
				fmt.Fprintf(w, "hit %s%s line %d: %s\n", p.Agency, hitNumber(p, j), lines[i].line, lines[i].text)
			}
		}
		if care && p.Instruction != "" {
			fmt.Fprintf(w, "%s asks, for its victim and witness hits: %s\n", p.Agency, p.Instruction)
		}
	}
	for _, p := range res.Partners {
		if len(p.HitNumbers) > 0 {
			fmt.Fprintf(w, "follow up hits of %s: xborder followup %s --partner %s --hit N --basis TEXT --purpose TEXT\n", p.Agency, res.ID, p.Agency)
		}
	}
	return nil
}

// hitNumber is " #N", the number of the j-th hit of p for a follow-up,
// or "" when the node kept none.
func hitNumber(p httpapi.PartnerResult, j int) string {
	if j < len(p.HitNumbers) && p.HitNumbers[j] > 0 {
		return fmt.Sprintf(" #%d", p.HitNumbers[j])
	}
	return ""
}

// hitReach is the reach of the j-th hit of p ("open" when the node gave
// none).
func hitReach(p httpapi.PartnerResult, j int) string {
	if j < len(p.HitReaches) && p.HitReaches[j] != "" {
		return p.HitReaches[j]
	}
	return "open"
}

// queryMode is the mode of an answer (enforcement when the node gave none).
func queryMode(m string) string {
	if m == "" {
		return "enforcement"
	}
	return m
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// queryJSON is the --json output: the node's answer with hits as lines.
type queryJSON struct {
	ID         string        `json:"id"`
	Kind       string        `json:"kind"`
	Values     int           `json:"values"`
	PaddedSize int           `json:"padded_size"`
	CaseKey    string        `json:"case_key"`
	Mode       string        `json:"mode"`
	Partners   []partnerJSON `json:"partners"`
}

type partnerJSON struct {
	httpapi.PartnerResult
	Hits []hitJSON `json:"hits"`
}

type hitJSON struct {
	Number int    `json:"number,omitempty"` // the hit's number for a follow-up (xborder followup --hit N)
	Line   int    `json:"line"`
	Value  string `json:"value"`
	Reach  string `json:"reach"` // open, victim or witness
}

func writeQueryJSON(w io.Writer, res httpapi.QueryResult, lines []queryLine) error {
	out := queryJSON{ID: res.ID, Kind: res.Kind, Values: res.Values, PaddedSize: res.PaddedSize, CaseKey: res.CaseKey,
		Mode: queryMode(res.Mode), Partners: []partnerJSON{}}
	for _, p := range res.Partners {
		pj := partnerJSON{PartnerResult: p, Hits: []hitJSON{}}
		for j, i := range p.Hits {
			if i >= 0 && i < len(lines) {
				h := hitJSON{Line: lines[i].line, Value: lines[i].text, Reach: hitReach(p, j)}
				if j < len(p.HitNumbers) {
					h.Number = p.HitNumbers[j]
				}
				pj.Hits = append(pj.Hits, h)
			}
		}
		pj.PartnerResult.Hits, pj.PartnerResult.HitReaches, pj.PartnerResult.HitNumbers = nil, nil, nil
		out.Partners = append(out.Partners, pj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

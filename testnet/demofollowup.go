package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// followupRefs are the references and contact points the owner imports
// with the two numbers the demo follows up.
var followupRefs = [2][2]string{{"CASE-FU-1", "THB desk duty officer"}, {"CASE-FU-2", "Port unit desk 4"}} // no commas: a CSV

// followups is the demo's step of issue 23 (docs/followup.md): the second
// agency imports two phone numbers with their references, contact points
// and handling codes; the first agency's query hits both, and its
// investigator follows each up (the second urgent); the owner's liaison
// sees both in its inbox, by deadline, with the records hit, shares the
// reference and contact of one under H2 and refuses the other; the
// investigator sees the answer, the querier's approver may not; both
// ledgers hold the four entries of each follow-up under its ID and one
// answer digest; a follow-up of a request the owner never answered is
// refused by the querier's node and, sent straight to the owner, by the
// owner, on its ledger.
func (d *demo) followups(ctx context.Context) {
	rep := d.rep
	q, o := d.net.Agencies[0], d.net.Agencies[1]
	rep.Step(fmt.Sprintf("Follow-up of hits (%s asks %s's liaison)", q.Code, o.Code),
		fmt.Sprintf("%s follows up two hits at %s; %s's liaison shares one (reference, contact, H2) and refuses the other; %s's investigator reads the answers; both ledgers hold every entry under the follow-up's ID; a follow-up of a request %s never answered is refused.",
			q.Code, o.Code, o.Code, q.Code, o.Code))
	if !d.canQuery || !d.net.HasVerb(ctx, "followup") {
		rep.Check(false, "follow-up", "this xborder has no 'query' or 'followup' verb")
		return
	}
	nums := Decoys(d.cfg.Seed, o.Code, "phone", 71000, 3)
	for i, v := range nums {
		c, err := ident.Canonical(ident.Phone, v, ident.Options{Region: o.Code})
		if err != nil {
			rep.Check(false, "follow-up", "decoy %d is no phone number: %v", i, err)
			return
		}
		nums[i] = c
	}
	if !d.holdWithRefs(ctx, o, nums[:2]) {
		return
	}
	// The query: the two numbers o holds, and one it does not.
	file := filepath.Join(d.net.Dir(), "queries", q.Code, "followup.txt")
	if err := writeLines(file, nums); err != nil {
		rep.Check(false, "follow-up", "%v", err)
		return
	}
	out, err := d.query(ctx, queryArgs{querier: q, kind: "phone", caseRef: "TN-FOLLOWUP", offence: "thb", partners: []string{o.Code}, file: file})
	p, _ := out.partner(o.Code)
	number := map[string]int{}
	for _, h := range p.Hits {
		if c, err := ident.Canonical(ident.Phone, h.Value, ident.Options{Region: q.Code}); err == nil {
			number[c] = h.Number
		}
	}
	if !rep.Check(err == nil && out.Code == 0 && len(p.Hits) == 2 && number[nums[0]] > 0 && number[nums[1]] > 0 && number[nums[0]] != number[nums[1]],
		q.Code+"'s query hits both, each with its number", "%s", errText(err, fmt.Sprintf("exit %d, %s, hits %v", out.Code, p.Outcome, numbersOf(p)))) {
		return
	}

	// Two follow-ups, the second urgent.
	f1, err := d.followup(ctx, q, p.RequestID, number[nums[0]], false)
	rep.Check(err == nil && f1.Status == httpapi.FollowupOpen && f1.OutIndex != nil, fmt.Sprintf("%s follows up hit #%d", q.Code, number[nums[0]]),
		"%s", errText(err, fmt.Sprintf("follow-up %s %s, answer due %s", short(f1.ID), f1.Status, f1.Deadline.Format(time.RFC3339))))
	f2, err := d.followup(ctx, q, p.RequestID, number[nums[1]], true)
	rep.Check(err == nil && f2.Status == httpapi.FollowupOpen && f2.Deadline.Before(f1.Deadline), fmt.Sprintf("%s follows up hit #%d, urgent", q.Code, number[nums[1]]),
		"%s", errText(err, fmt.Sprintf("follow-up %s %s, answer due %s", short(f2.ID), f2.Status, f2.Deadline.Format(time.RFC3339))))
	if f1.ID == "" || f2.ID == "" {
		return
	}

	// The owner's liaison: both, the urgent first, each with its record.
	var inbox []httpapi.FollowupInboxItem
	err = d.verbJSON(ctx, &inbox, "followups", "--inbox", "--json", "--api", d.api(o), "--token-file", o.Tokens["liaison"])
	pos := map[string]int{}
	for i, it := range inbox {
		pos[it.ID] = i
	}
	_, in1 := pos[f1.ID]
	_, in2 := pos[f2.ID]
	ok := err == nil && in1 && in2 && pos[f2.ID] < pos[f1.ID] &&
		inboxRef(inbox[pos[f1.ID]]) == followupRefs[0][0] && inboxRef(inbox[pos[f2.ID]]) == followupRefs[1][0]
	rep.Check(ok, o.Code+"'s liaison sees both, the urgent one first, each hit with its record", "%s",
		errText(err, fmt.Sprintf("%d follow-ups in the inbox", len(inbox))))
	_, code, stderr, err := runVerbCode(ctx, d.net.Binary(), time.Minute, "followup", "answer", f1.ID, "--share", "reference,contact",
		"--handling", "H2", "--message", "call the desk before 18:00 local time", "--api", d.api(o), "--token-file", o.Tokens["liaison"])
	rep.Check(err == nil && code == 0, o.Code+"'s liaison shares reference and contact under H2", "%s", errText(err, fmt.Sprintf("exit %d %s", code, lastLine(stderr))))
	_, code, stderr, err = runVerbCode(ctx, d.net.Binary(), time.Minute, "followup", "answer", f2.ID, "--refuse",
		"--reason", "the case is sealed by a court order", "--api", d.api(o), "--token-file", o.Tokens["liaison"])
	rep.Check(err == nil && code == 0, o.Code+"'s liaison refuses the other with a reason", "%s", errText(err, fmt.Sprintf("exit %d %s", code, lastLine(stderr))))

	// The investigator reads both answers (show polls the owner).
	a1, err := d.answered(ctx, q, f1.ID)
	ok = err == nil && a1.Answer != nil && a1.Answer.Outcome == "shared" && a1.Answer.Handling == "H2" && len(a1.Answer.Shared) == 1 &&
		a1.Answer.Shared[0].Reference == followupRefs[0][0] && a1.Answer.Shared[0].Contact == followupRefs[0][1]
	rep.Check(ok, q.Code+"'s investigator reads the answer: reference and contact, under H2", "%s", errText(err, answerLine(a1)))
	a2, err := d.answered(ctx, q, f2.ID)
	ok = err == nil && a2.Answer != nil && a2.Answer.Outcome == "refused" && a2.Answer.Reason == "the case is sealed by a court order"
	rep.Check(ok, q.Code+"'s investigator reads the refusal and its reason", "%s", errText(err, answerLine(a2)))
	_, code, stderr, err = runVerbCode(ctx, d.net.Binary(), time.Minute, "followup", "show", f1.ID, "--api", d.api(q), "--token-file", q.Tokens["approver"])
	rep.Check(err == nil && code == 3, q.Code+"'s approver may not read it", "%s", errText(err, fmt.Sprintf("exit %d %s", code, lastLine(stderr))))

	// Both ledgers, under each follow-up's ID.
	for _, f := range []struct {
		rec     httpapi.SentFollowup
		outcome ledger.Outcome
		ans     *httpapi.FollowupAnswer
	}{{f1, ledger.OutcomeOK, a1.Answer}, {f2, ledger.OutcomeDenied, a2.Answer}} {
		qe, err1 := d.followupEntries(ctx, q, f.rec.ID)
		oe, err2 := d.followupEntries(ctx, o, f.rec.ID)
		digest := ""
		if f.ans != nil {
			digest = f.ans.Digest
		}
		res, ans := qe[ledger.TypeFollowupResult], oe[ledger.TypeFollowupAnswer]
		ok := err1 == nil && err2 == nil && qe[ledger.TypeFollowupOut].Outcome == ledger.OutcomeOK && oe[ledger.TypeFollowupIn].Index > 0 &&
			res.Outcome == f.outcome && ans.Outcome == f.outcome && digest != "" && hex.EncodeToString(res.Digest[:]) == digest &&
			res.Digest == ans.Digest && res.RequestID == p.RequestID && oe[ledger.TypeFollowupIn].RequestID == p.RequestID
		rep.Check(ok, fmt.Sprintf("both ledgers hold follow-up %s", short(f.rec.ID)), "%s", errText(errors.Join(err1, err2),
			fmt.Sprintf("%s: followup_out %d, followup_result %d (%s); %s: followup_in %d, followup_answer %d (%s); one answer digest %s",
				q.Code, qe[ledger.TypeFollowupOut].Index, res.Index, res.Outcome, o.Code, oe[ledger.TypeFollowupIn].Index, ans.Index, ans.Outcome, short(digest))))
	}

	// A request o never answered: q's node holds nothing of it; sent
	// straight to o with q's keys, o refuses it and records the refusal.
	var rid [16]byte
	_, _ = rand.Read(rid[:])
	_, code, stderr, err = runVerbCode(ctx, d.net.Binary(), time.Minute, "followup", hex.EncodeToString(rid[:]), "--hit", "1",
		"--basis", "testnet demo: synthetic data", "--purpose", "show a made-up request is refused",
		"--api", d.api(q), "--token-file", q.Tokens["investigator"])
	rep.Check(err == nil && code == 1 && strings.Contains(stderr, "no hits of it are kept"), q.Code+"'s node refuses a follow-up of a request it never sent", "%s",
		errText(err, fmt.Sprintf("exit %d %s", code, lastLine(stderr))))
	fid, reason, err := d.handBuiltFollowup(ctx, q, o, rid)
	if rep.Check(err == nil && reason == exchange.ReasonUnknownRequest, o.Code+" refuses a hand-built follow-up of a request it never answered", "%s",
		errText(err, "denied: "+string(reason))) {
		oe, err := d.followupEntries(ctx, o, fid)
		e := oe[ledger.TypeDenial]
		rep.Check(err == nil && e.Index > 0 && e.RequestID == hex.EncodeToString(rid[:]) && e.Partner == q.Code, o.Code+"'s ledger records the refusal", "%s",
			errText(err, fmt.Sprintf("entry %d: %s, %s, follow-up %s", e.Index, typeName(e.Type), e.Outcome, short(e.FollowupID))))
	}
}

// numbersOf lists the hit numbers of p.
func numbersOf(p partnerResult) []int {
	var out []int
	for _, h := range p.Hits {
		out = append(out, h.Number)
	}
	return out
}

// inboxRef is the reference of the first record of the first hit of it.
func inboxRef(it httpapi.FollowupInboxItem) string {
	if len(it.Hits) == 0 || len(it.Hits[0].Records) == 0 {
		return ""
	}
	return it.Hits[0].Records[0].Reference
}

// answerLine describes a follow-up and its answer for the report (the
// demo's answers are synthetic).
func answerLine(f httpapi.SentFollowup) string {
	if f.Answer == nil {
		return fmt.Sprintf("follow-up %s %s, no answer", short(f.ID), f.Status)
	}
	a := f.Answer
	s := fmt.Sprintf("follow-up %s %s: %s", short(f.ID), f.Status, a.Outcome)
	if a.Outcome == "refused" {
		return s + ": " + a.Reason
	}
	for _, x := range a.Shared {
		s += fmt.Sprintf("; hit #%d: %s, %s", x.Hit, x.Reference, x.Contact)
	}
	return s + ", handling " + a.Handling
}

// holdWithRefs imports values into o with a reference, a contact point
// and a handling code per row, as o's steward, and waits until every
// replica of o serves its open set with them.
func (d *demo) holdWithRefs(ctx context.Context, o *AgencyNode, values []string) bool {
	rep := d.rep
	what := o.Code + " imports two numbers with their references and contacts"
	before, err := d.setVersions(ctx, o)
	if err != nil {
		rep.Check(false, what, "%v", err)
		return false
	}
	file := filepath.Join(d.net.Dir(), "holdings", o.Code, "phone-followup.csv")
	body := "value,ref,contact,handling\n"
	for i, v := range values {
		body += fmt.Sprintf("%s,%s,%s,%s\n", v, followupRefs[i][0], followupRefs[i][1], []string{"H2", "H3"}[i])
	}
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		rep.Check(false, what, "%v", err)
		return false
	}
	out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), 5*time.Minute, "data", "import", "--kind", "phone", "--region", o.Code,
		"--ref-column", "ref", "--contact-column", "contact", "--handling-column", "handling",
		"--api", d.api(o), "--token-file", o.Tokens["steward"], file)
	if !rep.Check(err == nil && code == 0, what, "%s", errText(err, fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(lastLine(out+"\n"+stderr))))) {
		return false
	}
	err = poll(ctx, 3*time.Minute, func() error {
		now, err := d.setVersions(ctx, o)
		if err != nil {
			return err
		}
		for r, vs := range now {
			if vs["open"] <= before[r]["open"] {
				return fmt.Errorf("replica %s: the open set is at version %d still", r, vs["open"])
			}
		}
		return nil
	})
	return rep.Check(err == nil, "every replica of "+o.Code+" serves them", "%s", errText(err, "the open set has a new version"))
}

// followup runs `xborder followup REQUEST-ID --hit N --json` as q's
// investigator.
func (d *demo) followup(ctx context.Context, q *AgencyNode, request string, hit int, urgent bool) (httpapi.SentFollowup, error) {
	args := []string{"followup", request, "--hit", fmt.Sprint(hit), "--basis", "testnet demo: synthetic data",
		"--purpose", "identify the case officer", "--json", "--api", d.api(q), "--token-file", q.Tokens["investigator"]}
	if urgent {
		args = append(args, "--urgent")
	}
	var rec httpapi.SentFollowup
	return rec, d.verbJSON(ctx, &rec, args...)
}

// answered runs `xborder followup show ID --json` as q's investigator
// until the answer is there (show asks the owner while it is open).
func (d *demo) answered(ctx context.Context, q *AgencyNode, id string) (httpapi.SentFollowup, error) {
	var rec httpapi.SentFollowup
	err := poll(ctx, time.Minute, func() error {
		rec = httpapi.SentFollowup{}
		if err := d.verbJSON(ctx, &rec, "followup", "show", id, "--json", "--api", d.api(q), "--token-file", q.Tokens["investigator"]); err != nil {
			return err
		}
		if rec.Status != httpapi.FollowupAnswered {
			return fmt.Errorf("follow-up %s is %s", short(id), rec.Status)
		}
		return nil
	})
	return rec, err
}

// verbJSON runs xborder with args and reads its standard output as JSON
// into v.
func (d *demo) verbJSON(ctx context.Context, v any, args ...string) error {
	out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), 3*time.Minute, args...)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("xborder %s: exit %d: %s", args[0], code, lastLine(stderr))
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("read the JSON of xborder %s: %w", args[0], err)
	}
	return nil
}

// followupEntries returns, by type, the entries of a's ledger that carry
// follow-up ID id (read as a's auditor).
func (d *demo) followupEntries(ctx context.Context, a *AgencyNode, id string) (map[ledger.Type]ledger.Entry, error) {
	out := map[ledger.Type]ledger.Entry{}
	c, err := d.client(a, "auditor")
	if err != nil {
		return out, err
	}
	es, err := c.Entries(ctx, "testnet demo: check the follow-up entries", ledger.Filter{Types: []ledger.Type{ledger.TypeFollowupIn,
		ledger.TypeFollowupOut, ledger.TypeFollowupResult, ledger.TypeFollowupAnswer, ledger.TypeDenial}})
	if err != nil {
		return out, err
	}
	for _, e := range es {
		if e.FollowupID == id {
			out[e.Type] = e
		}
	}
	if len(out) == 0 {
		return out, fmt.Errorf("no entry of follow-up %s on %s's ledger", short(id), a.Code)
	}
	return out, nil
}

// handBuiltFollowup sends o a follow-up of request rid, which o never
// answered, built outside q's node: signed with q's agency key, from a
// libp2p peer with q's first replica's identity. It returns the follow-up
// ID (hex) and o's denial reason.
func (d *demo) handBuiltFollowup(ctx context.Context, q, o *AgencyNode, rid [16]byte) (string, exchange.Reason, error) {
	im, err := d.impersonate(ctx, q, o)
	if err != nil {
		return "", "", err
	}
	defer im.host.Close()
	var fid [16]byte
	var tag psi.Tag
	_, _ = rand.Read(fid[:])
	_, _ = rand.Read(tag[:])
	_, err = im.client.Followup(ctx, im.host, im.peer(), exchange.Followup{ID: fid, Owner: o.Code, RequestID: rid,
		Kind: "phone", Epoch: im.latestEpoch("phone", ""), Mode: exchange.ModeEnforcement,
		Tags:  []exchange.FollowupTag{{Reach: exchange.ReachOpen, Tag: tag}},
		Basis: "testnet demo: synthetic data", Purpose: "show a made-up request is refused"})
	reason, err := denial(err, "the follow-up was accepted")
	return hex.EncodeToString(fid[:]), reason, err
}

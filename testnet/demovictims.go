package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/psi"
)

// victims is the demo's step of issue 22 (docs/victims.md): the second
// agency holds one phone number as a victim's and one as a suspect's; the
// first agency's enforcement query hits the suspect only, its approved
// safeguarding query hits both and shows the victim with its handling, and
// an enforcement request for the victim reach, built by hand, is refused
// by the querier's own node and, sent straight to the owner, by the owner;
// each refusal is on that agency's ledger.
func (d *demo) victims(ctx context.Context) {
	rep := d.rep
	q, o := d.net.Agencies[0], d.net.Agencies[1]
	rep.Step(fmt.Sprintf("Victim-centred matching (%s asks %s)", q.Code, o.Code),
		fmt.Sprintf("%s holds one phone number as a victim's and one as a suspect's; %s's enforcement query must hit the suspect only, its approved safeguarding query both, the victim shown with its handling; an enforcement request for the victim reach is refused, on both ledgers.", o.Code, q.Code))
	if !d.canQuery || !d.net.HasVerb(ctx, "approve") {
		rep.Check(false, "victim-centred matching", "this xborder has no 'query' or 'approve' verb")
		return
	}
	nums := Decoys(d.cfg.Seed, o.Code, "phone", 70000, 2)
	for i, v := range nums {
		c, err := ident.Canonical(ident.Phone, v, ident.Options{Region: o.Code})
		if err != nil {
			rep.Check(false, "victim-centred matching", "decoy %d is no phone number: %v", i, err)
			return
		}
		nums[i] = c
	}
	victim, suspect := nums[0], nums[1]
	if !d.holdClassified(ctx, o, victim, suspect) {
		return
	}
	file := filepath.Join(d.net.Dir(), "queries", q.Code, "victims.txt")
	if err := writeLines(file, []string{suspect, victim}); err != nil {
		rep.Check(false, "victim-centred matching", "%v", err)
		return
	}
	base := queryArgs{querier: q, kind: "phone", offence: "thb", partners: []string{o.Code}, file: file}

	enf := base
	enf.caseRef = "TN-VICTIMS-ENF"
	out, err := d.query(ctx, enf)
	p, _ := out.partner(o.Code)
	got := hitReaches(out, p)
	rep.Check(err == nil && out.Code == 0 && slices.Equal(got, []string{suspect + " (open)"}),
		"the enforcement query hits the suspect, not the victim", "%s", errText(err, fmt.Sprintf("exit %d, %s: %v", out.Code, p.Outcome, redact(got, victim, suspect))))

	sg := base
	sg.caseRef, sg.mode = "TN-VICTIMS-SG", "safeguarding"
	out, err = d.approvedQuery(ctx, sg)
	p, _ = out.partner(o.Code)
	got = hitReaches(out, p)
	want := []string{suspect + " (open)", victim + " (victim)"}
	slices.Sort(want)
	rep.Check(err == nil && out.Code == 0 && slices.Equal(got, want) && p.Handling != "" && p.Instruction != "",
		"the approved safeguarding query hits both, the victim as such, with its handling", "%s",
		errText(err, fmt.Sprintf("exit %d, %s: %v; handling %s: %q", out.Code, p.Outcome, redact(got, victim, suspect), p.Handling, p.Instruction)))

	// By hand through the querier's own node: its policy refuses, and
	// records, an enforcement query of the victim reach; nothing is sent.
	hand := base
	hand.caseRef, hand.reaches = "TN-VICTIMS-HAND", []string{"victim"}
	out, err = d.query(ctx, hand)
	p, _ = out.partner(o.Code)
	ok := err == nil && p.Outcome == httpapi.OutcomeDenied && p.Reason == "reach_not_allowed"
	if rep.Check(ok, q.Code+" refuses an enforcement query of the victim reach", "%s", errText(err, fmt.Sprintf("exit %d, %s %s", out.Code, p.Outcome, p.Reason))) {
		e, err := d.findEntry(ctx, q, p.RequestID)
		rep.Check(err == nil && e.Mode == "enforcement" && e.Reaches == "victim", q.Code+"'s ledger records the refusal", "%s",
			errText(err, fmt.Sprintf("entry %d: %s, %s, mode %s, reaches %s", e.Index, typeName(e.Type), e.Outcome, e.Mode, e.Reaches)))
	}
	// By hand outside it: the same request, signed with the querier's
	// agency key and sent from a peer with its replica identity straight to
	// the owner, is refused before any evaluation, and recorded there.
	id, reason, err := d.handBuiltMatch(ctx, q, o, victim)
	if rep.Check(err == nil && reason == exchange.ReasonReachNotAllowed, o.Code+" refuses a hand-built enforcement request for the victim reach", "%s",
		errText(err, "denied: "+string(reason))) {
		e, err := d.findEntry(ctx, o, id)
		rep.Check(err == nil && e.Mode == "enforcement" && e.Reaches == "victim", o.Code+"'s ledger records the refusal", "%s",
			errText(err, fmt.Sprintf("entry %d: %s, %s, mode %s, reaches %s", e.Index, typeName(e.Type), e.Outcome, e.Mode, e.Reaches)))
	}
}

// hitReaches returns "VALUE REACH" for each hit of p, sorted, with the
// values canonical.
func hitReaches(o queryOut, p partnerResult) []string {
	var out []string
	for _, h := range p.Hits {
		c, err := ident.Canonical(ident.Phone, h.Value, ident.Options{Region: o.region})
		if err != nil {
			c = h.Value
		}
		out = append(out, c+" ("+h.Reach+")")
	}
	slices.Sort(out)
	return out
}

// redact names the two numbers of the step in a report line.
func redact(hits []string, victim, suspect string) []string {
	r := strings.NewReplacer(victim, "the victim", suspect, "the suspect")
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = r.Replace(h)
	}
	return out
}

// holdClassified imports the victim's and the suspect's numbers into o
// with a class column, as o's steward, and waits until every replica of
// o serves its open and victim sets with them.
func (d *demo) holdClassified(ctx context.Context, o *AgencyNode, victim, suspect string) bool {
	rep := d.rep
	before, err := d.setVersions(ctx, o)
	if err != nil {
		rep.Check(false, o.Code+" imports a victim's and a suspect's number", "%v", err)
		return false
	}
	file := filepath.Join(d.net.Dir(), "holdings", o.Code, "phone-classes.csv")
	body := "value,class\n" + victim + ",victim\n" + suspect + ",suspect\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		rep.Check(false, o.Code+" imports a victim's and a suspect's number", "%v", err)
		return false
	}
	out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), 5*time.Minute, "data", "import", "--kind", "phone",
		"--region", o.Code, "--class-column", "class", "--api", d.api(o), "--token-file", o.Tokens["steward"], file)
	if !rep.Check(err == nil && code == 0, o.Code+" imports a victim's and a suspect's number", "%s",
		errText(err, fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(lastLine(out+"\n"+stderr))))) {
		return false
	}
	err = poll(ctx, 3*time.Minute, func() error {
		now, err := d.setVersions(ctx, o)
		if err != nil {
			return err
		}
		for r, vs := range now {
			for _, reach := range []string{"open", "victim"} {
				if vs[reach] <= before[r][reach] {
					return fmt.Errorf("replica %s: the %s set is at version %d still", r, reach, vs[reach])
				}
			}
		}
		return nil
	})
	return rep.Check(err == nil, "every replica of "+o.Code+" serves them", "%s", errText(err, "the open and the victim sets each have a new version"))
}

// setVersions returns, per running replica of a, the version its phone
// set of each reach serves in the current epoch (0: none).
func (d *demo) setVersions(ctx context.Context, a *AgencyNode) (map[string]map[string]int, error) {
	out := map[string]map[string]int{}
	for i, r := range a.Replicas {
		if !r.Running() {
			continue
		}
		c, err := a.Client(i, "steward")
		if err != nil {
			return nil, err
		}
		st, err := c.DataStats(ctx)
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", r.ID, err)
		}
		vs := map[string]int{}
		for _, s := range st.Sets {
			if s.Kind == "phone" && s.Epoch == st.Epoch && s.Serving {
				vs[s.Reach] = s.Version
			}
		}
		out[r.ID] = vs
	}
	return out, nil
}

// approvedQuery runs a query that waits for an approver, and approves it
// as the querier's approver once it is pending.
func (d *demo) approvedQuery(ctx context.Context, qa queryArgs) (queryOut, error) {
	type res struct {
		o   queryOut
		err error
	}
	done := make(chan res, 1)
	qctx, qcancel := context.WithCancel(ctx)
	defer qcancel()
	go func() {
		o, err := d.query(qctx, qa)
		done <- res{o, err}
	}()
	q := qa.querier
	var id string
	err := poll(ctx, 60*time.Second, func() error {
		c, err := d.client(q, "approver")
		if err != nil {
			return err
		}
		recs, err := c.Queries(ctx, true)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Case == qa.caseRef && r.Status == "pending" {
				id = r.ID
				return nil
			}
		}
		return errors.New("no pending query")
	})
	if err == nil {
		var code int
		var stderr string
		_, code, stderr, err = runVerbCode(ctx, d.net.Binary(), time.Minute, "approve", id,
			"--api", d.api(q), "--token-file", q.Tokens["approver"])
		if err == nil && code != 0 {
			err = fmt.Errorf("xborder approve: exit %d: %s", code, lastLine(stderr))
		}
	}
	if err != nil {
		qcancel()
		<-done
		return queryOut{}, fmt.Errorf("approve the query: %w", err)
	}
	select {
	case r := <-done:
		return r.o, r.err
	case <-time.After(3 * time.Minute):
		qcancel()
		<-done
		return queryOut{}, errors.New("no answer within 3 minutes of the approval")
	}
}

// handBuiltMatch sends o an enforcement match request for its victim
// reach, built outside q's node: signed with q's agency key, from a libp2p
// peer with q's first replica's identity (the only identity o's gater
// admits), blinding value under o's victim key as o's card lists it. It
// returns the request ID (hex) and o's denial reason.
func (d *demo) handBuiltMatch(ctx context.Context, q, o *AgencyNode, value string) (string, exchange.Reason, error) {
	im, err := d.impersonate(ctx, q, o)
	if err != nil {
		return "", "", err
	}
	defer im.host.Close()
	epoch := im.latestEpoch("phone", "victim")
	vk, err := psi.ParsePublicKey(im.card.EpochKey(epoch, "phone", "victim"))
	if err != nil {
		return "", "", fmt.Errorf("%s's card: victim key of epoch %d: %w", o.Code, epoch, err)
	}
	pq, err := psi.NewQuerier(psi.QuerierConfig{Kind: "phone", Epoch: epoch, Dummy: ident.DummyInput})
	if err != nil {
		return "", "", err
	}
	_, evreq, err := pq.Blind([][]byte{ident.Input(ident.Phone, value)}, rand.Reader)
	if err != nil {
		return "", "", err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	_, err = im.client.Match(ctx, im.host, im.peer(), exchange.Query{ID: id, Responder: o.Code, Kind: "phone",
		Epoch: epoch, Mode: exchange.ModeEnforcement, Reaches: []string{exchange.ReachVictim},
		Keys: map[string]*psi.PublicKey{exchange.ReachVictim: vk}, CaseRef: "TN-VICTIMS-BYPASS", LegalBasis: "testnet demo: synthetic data",
		Offence: "thb", Purpose: "show that enforcement never reaches a victim", Eval: evreq})
	reason, err := denial(err, "the request was answered with an evaluation")
	return hex.EncodeToString(id[:]), reason, err
}

package testnet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// leader returns the replica of a that leads its audit group.
func (d *demo) leader(ctx context.Context, a *AgencyNode) (*Replica, error) {
	var lead *Replica
	err := poll(ctx, 30*time.Second, func() error {
		for i, r := range a.Replicas {
			if !r.Running() {
				continue
			}
			c, err := a.Client(i, "admin")
			if err != nil {
				return err
			}
			st, err := c.Status(ctx)
			if err != nil {
				continue
			}
			for _, g := range st.Groups {
				if g.Name == "audit" && g.Leader != "" && g.Quorum {
					for _, x := range a.Replicas {
						if x.ID == g.Leader && x.Running() {
							lead = x
							return nil
						}
					}
				}
			}
		}
		return errors.New("no replica knows a running leader of the audit group")
	})
	return lead, err
}

func (d *demo) leaderKill(ctx context.Context) {
	rep := d.rep
	r, q := d.net.Agencies[0], d.net.Agencies[1]
	rep.Step(fmt.Sprintf("%s's leader replica is killed (SIGKILL) in the middle of a query", r.Code),
		"The surviving replicas elect a new leader; the federation keeps answering, with the same hits.")
	if len(r.Replicas) < 3 {
		rep.Note("%s runs one replica: killing it would stop the agency (run with --replicas 3 to see the failover)", r.Code)
		return
	}
	lead, err := d.leader(ctx, r)
	if !rep.Check(err == nil, r.Code+" has a leader", "%s", errText(err, lead.ID)) {
		return
	}
	// A query of 1,000 phone numbers (the planted ones among them) takes
	// long enough for the kill to land while it runs.
	var lines []string
	for _, p := range d.net.Truth.Known(q.Code, "phone") {
		lines = append(lines, p.Canonical)
	}
	lines = append(lines, Decoys(d.cfg.Seed, q.Code, "phone", 20000, max(0, 1000-len(lines)))...)
	file := filepath.Join(d.net.Dir(), "queries", q.Code, "failover-phone.txt")
	if err := writeLines(file, lines); err != nil {
		rep.Check(false, "failover query file", "%v", err)
		return
	}
	qa := queryArgs{querier: q, kind: "phone", caseRef: "TN-FAILOVER", offence: "thb", partners: []string{r.Code}, file: file}
	var wg sync.WaitGroup
	var mid queryOut
	var midErr error
	wg.Go(func() { mid, midErr = d.query(ctx, qa) })
	time.Sleep(150 * time.Millisecond) // let the query reach the partner
	lead.Kill()
	rep.Note("killed %s/%s (pid %d) with SIGKILL", r.Code, lead.ID, lead.PID())
	wg.Wait()
	if p, ok := mid.partner(r.Code); midErr == nil && ok {
		rep.Note("the query in flight ended with exit %d: %s in %dms", mid.Code, strings.TrimSpace(p.Outcome+" "+p.Reason), p.Millis)
	} else {
		rep.Note("the query in flight ended with exit %d: %s", mid.Code, errText(midErr, lastLine(mid.Stderr)))
	}
	nl, err := d.leader(ctx, r)
	rep.Check(err == nil && nl != lead, r.Code+" elects a new leader", "%s", errText(err, "now "+nlID(nl)))
	var o queryOut
	err = poll(ctx, 60*time.Second, func() error {
		o, err = d.query(ctx, qa)
		if err != nil {
			return err
		}
		if p, _ := o.partner(r.Code); p.Outcome != httpapi.OutcomeHits && p.Outcome != httpapi.OutcomeNoHits {
			return fmt.Errorf("%s: %s", p.Outcome, p.Reason)
		}
		return nil
	})
	if err != nil {
		rep.Check(false, q.Code+" still gets its hits from "+r.Code, "%v", err)
	} else {
		d.checkHits(q.Code+" still gets its hits from "+r.Code, qa, o, nil)
	}
	// And the agency that lost its leader still asks its partners.
	rq := queryArgs{querier: r, kind: "email", caseRef: "TN-FAILOVER-OUT", offence: "thb",
		file: filepath.Join(d.net.Dir(), "queries", r.Code, "email.txt")}
	o, err = d.query(ctx, rq)
	d.checkHits(r.Code+" still asks its partners", rq, o, err)
}

func nlID(r *Replica) string {
	if r == nil {
		return "none"
	}
	return r.ID
}

package node

import (
	"context"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// hitCount is the number of distinct identifiers among the hits, indexes
// into the query's values: a value given twice (two spellings of one
// number) is one hit on two lines, so the count never exceeds the distinct
// values nor the padded size (issue 19, item 11).
func (p *queryPlan) hitCount(hits []int) int {
	hit := make(map[string]bool, len(hits))
	for _, i := range hits {
		hit[string(p.inputs[i])] = true
	}
	return len(hit)
}

// recordResult commits the match_result entry of one partner's part, its
// hit count the distinct identifiers among r.Hits. When it cannot be
// committed the part reports "unavailable" and no hits.
func (q *querier) recordResult(ctx context.Context, p *queryPlan, r *httpapi.PartnerResult, entry ledger.Entry,
	out ledger.Outcome, version uint32) httpapi.PartnerResult {
	r.HitCount = p.hitCount(r.Hits)
	e := entry
	e.Type, e.Outcome, e.HitCount, e.SetVersion, e.Digest = ledger.TypeMatchResult, out, uint64(r.HitCount), uint64(version), p.commit
	t := time.Now()
	rc, err := q.cfg.Audit.Append(ctx, e)
	q.cfg.Metrics.stage("out", "ledger", t)
	if err != nil {
		return httpapi.PartnerResult{Agency: r.Agency, RequestID: r.RequestID, Outcome: httpapi.OutcomeUnavailable,
			Reason:        "this node's ledger did not record the result, so it is withheld: " + err.Error(),
			OutboundIndex: r.OutboundIndex, Epoch: r.Epoch}
	}
	r.ResultIndex = &rc.Index
	return *r
}

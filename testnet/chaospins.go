package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/ledger/format"
)

// repin re-pins a partner's card as two agencies' operators do after a
// rotation: the partner's admin reads its newest card (`xborder card`,
// from one of its replicas: it lists the new epoch's keys under a higher
// sequence) and hands it over with its fingerprint; this agency's admin
// pins it on one of its replicas. A card that is not newer than the one
// pinned (the background sync pinned it first) is refused (failed); that
// is no fault.
func (w *workload) repin(_ context.Context, rng *rand.Rand, a *AgencyNode, client, ri int) {
	var partners []*AgencyNode
	for _, p := range w.net.Agencies {
		if p != a {
			partners = append(partners, p)
		}
	}
	if len(partners) == 0 {
		return
	}
	p := partners[rng.IntN(len(partners))]
	pi := rng.IntN(len(p.Replicas))
	pc, err := p.Client(pi, "admin")
	if err != nil {
		return
	}
	c, err := a.Client(ri, "admin")
	if err != nil {
		return
	}
	op := w.hist.begin(a.Code, client, "repin", a.Replicas[ri].ID)
	op.Partner = p.Code
	ctx, cancel := context.WithTimeout(w.hard, opTimeout)
	defer cancel()
	cd, err := pc.Card(ctx)
	if err == nil {
		var parsed *card.Card
		if parsed, err = card.Parse([]byte(cd.Card)); err == nil {
			op.Sequence = parsed.Sequence
			_, err = c.AddPartner(ctx, cd.Card, cd.Fingerprint)
		}
		if err != nil {
			// Reading the partner's card is not the pin: a failure there
			// pinned nothing.
			err = fmt.Errorf("re-pin %s: %w", p.Code, err)
		}
	}
	w.hist.end(op, err)
}

// pins: on each agency's final ledger the partner entries of each partner
// never go back in sequence (a later pin of an older card would be a
// rollback); every acknowledged re-pin has its partner entry for that
// sequence; and every replica has pinned, of each partner, a card at
// least as new as every acknowledged re-pin.
func (c *checker) pins() {
	for _, a := range c.net.Agencies {
		l, ok := c.last[a.Code]
		if !ok {
			continue
		}
		var bad []string
		seqs := map[string][]uint64{} // partner → sequences in ledger order
		pinned := map[string]bool{}   // partner/sequence
		for _, x := range l.lines {
			h := x.Header
			if h.Type != format.TypePartner || x.Body == nil || !strings.Contains(x.Body.Purpose, "partner card") {
				continue
			}
			if s := seqs[h.Partner]; len(s) > 0 && h.Count < s[len(s)-1] {
				bad = append(bad, fmt.Sprintf("partner entry %d pins %s's card %d after card %d", x.Index, h.Partner, h.Count, s[len(s)-1]))
			}
			seqs[h.Partner] = append(seqs[h.Partner], h.Count)
			pinned[fmt.Sprintf("%s/%d", h.Partner, h.Count)] = true
		}
		newest := map[string]uint64{}
		n := map[string]int{}
		for _, op := range c.agencyOps(a.Code) {
			if op.Kind != "repin" {
				continue
			}
			n[op.Outcome]++
			if op.Outcome != OpOK {
				continue
			}
			newest[op.Partner] = max(newest[op.Partner], op.Sequence)
			if !pinned[fmt.Sprintf("%s/%d", op.Partner, op.Sequence)] {
				bad = append(bad, fmt.Sprintf("op %d: re-pin of %s's card %d acknowledged, no partner entry for it", op.ID, op.Partner, op.Sequence))
			}
		}
		for i := range a.Replicas {
			cl, err := a.Client(i, "admin")
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ps, err := cl.Partners(ctx)
			cancel()
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: list partners: %v", a.Replicas[i].ID, err))
				continue
			}
			for _, p := range ps {
				if p.Sequence < newest[p.Agency] {
					bad = append(bad, fmt.Sprintf("%s pins %s's card %d, after a re-pin of card %d was acknowledged", a.Replicas[i].ID, p.Agency, p.Sequence, newest[p.Agency]))
				}
			}
		}
		c.rep.Check(len(bad) == 0, a.Code+": every acknowledged re-pin recorded and in force, no pin going back",
			"re-pins %s%s; %d partner entries%s", fmtCounts(n), whyFailed(c.agencyOps(a.Code), "repin"), len(pinned), evidence(bad))
	}
}

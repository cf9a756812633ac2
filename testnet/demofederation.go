package testnet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

func (d *demo) checkFederation(ctx context.Context) {
	rep := d.rep
	rep.Step("Check the federation", "Each replica is ready with a quorum, every agency pins every other, and one policy version is in force everywhere.")
	for _, a := range d.net.Agencies {
		// A replica busy building its sets may miss a heartbeat: give
		// the agency a minute to be healthy everywhere at once.
		start := time.Now()
		err := poll(ctx, time.Minute, func() error {
			var bad []string
			for i, r := range a.Replicas {
				c, err := a.Client(i, "admin")
				if err != nil {
					return err
				}
				st, err := c.Status(ctx)
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s: %v", r.ID, err))
					continue
				}
				if st.Policy != d.net.Policy {
					bad = append(bad, fmt.Sprintf("%s: policy %s in force", r.ID, short(st.Policy)))
				}
				for _, g := range st.Groups {
					if !g.Quorum || !g.Healthy {
						bad = append(bad, fmt.Sprintf("%s: group %s has no healthy quorum", r.ID, g.Name))
					}
				}
			}
			return joinErr(bad)
		})
		waited := ""
		if s := time.Since(start); s > time.Second {
			waited = fmt.Sprintf(" (after %s)", s.Round(time.Second))
		}
		rep.Check(err == nil, a.Code+" replicas ready",
			"%s", errText(err, fmt.Sprintf("%d replicas, policy %s%s", len(a.Replicas), short(d.net.Policy), waited)))
		c, err := d.client(a, "admin")
		var ps []httpapi.Partner
		if err == nil {
			ps, err = c.Partners(ctx)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Agency)
		}
		sort.Strings(got)
		var want []string
		for _, p := range d.net.Agencies {
			if p != a {
				want = append(want, p.Code)
			}
		}
		sort.Strings(want)
		rep.Check(err == nil && slices.Equal(got, want), a.Code+" pins its partners", "%s",
			errText(err, fmt.Sprintf("pinned %v, want %v", got, want)))
	}
}

func joinErr(msgs []string) error {
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// checkHoldings checks that every replica holds the imported rows and has
// built the same encoded sets.
func (d *demo) checkHoldings(ctx context.Context) {
	rep := d.rep
	rep.Step("Holdings and encoded sets", "Each agency imported its synthetic holdings; every replica builds byte-identical encoded sets (same digest).")
	if !d.net.HasVerb(ctx, "data", "import") {
		rep.Check(false, "holdings imported", "this xborder has no 'data import' verb")
		return
	}
	// One deadline for all agencies: they build their sets at once.
	deadline := time.Now().Add(buildBound(d.cfg))
	for _, a := range d.net.Agencies {
		want := map[string]int{}
		for _, r := range d.net.Truth.Rows {
			if r.Agency == a.Code {
				want[r.Kind] = r.Rows
			}
		}
		var last string
		err := poll(ctx, time.Until(deadline), func() error {
			digests := map[string]string{}
			for i, r := range a.Replicas {
				if !r.Running() {
					continue
				}
				c, err := a.Client(i, "admin")
				if err != nil {
					return err
				}
				st, err := c.DataStats(ctx)
				if err != nil {
					return fmt.Errorf("%s: %w", r.ID, err)
				}
				for _, k := range st.Kinds {
					switch {
					case k.Rows > want[k.Kind]:
						return permanent(fmt.Errorf("%s holds %d %s rows, more than the %d imported", r.ID, k.Rows, k.Kind, want[k.Kind]))
					case k.Rows < want[k.Kind]:
						return fmt.Errorf("%s holds %d %s rows, want %d", r.ID, k.Rows, k.Kind, want[k.Kind])
					case k.Built < k.Versions || k.Digest == "":
						return fmt.Errorf("%s has built %d of %d %s set versions", r.ID, k.Built, k.Versions, k.Kind)
					case k.Versions == 1 && k.Entries < k.Rows:
						return permanent(fmt.Errorf("%s built a %s set of %d entries for %d rows", r.ID, k.Kind, k.Entries, k.Rows))
					}
					if dg, ok := digests[k.Kind]; ok && dg != k.Digest {
						return permanent(fmt.Errorf("%s set digests differ between replicas", k.Kind))
					}
					digests[k.Kind] = k.Digest
				}
				if len(st.Kinds) < len(want) {
					return fmt.Errorf("%s holds %d kinds, want %d", r.ID, len(st.Kinds), len(want))
				}
			}
			last = fmt.Sprintf("%d kinds on %d replicas, one digest per kind", len(digests), len(a.Replicas))
			return nil
		})
		rep.Check(err == nil, a.Code+" holdings and sets", "%s", errText(err, last))
	}
}

// buildBound bounds the wait for every replica to build its encoded sets:
// three minutes, or more for large holdings (every replica of every agency
// evaluates every row once, at about 15,000 rows a second on this 2-core
// machine, all replicas together).
func buildBound(cfg Config) time.Duration {
	rows := time.Duration(cfg.Holdings) * time.Duration(cfg.Agencies) * time.Duration(cfg.Replicas)
	return max(3*time.Minute, rows*time.Second/15000)
}

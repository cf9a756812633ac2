package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
	"github.com/xborder/xborder/psi"
)

// nsFollowupHits holds, in the data group's records, per match request
// this agency sent (key: the request ID, hex), the follow-up tags of that
// partner's hits (keptHits JSON), numbered as the query's answer numbers
// them, until the follow-up window ends. The data group's records are
// replicated and encrypted at rest with the storage key (badger, and the
// snapshots), and the group is opened Erasable: after a sweep deletes
// records, an erasure request makes every replica compact it (erase.go),
// so the tags leave every file. The tags are never logged nor put in the
// ledger.
const nsFollowupHits = "followup_hits"

// DefaultFollowupWindow is how long this node keeps the tags of a query's
// hits, so that they can be followed up, when the limits file sets no
// window for the partner (followups.CC.window): the owner's default window
// too (docs/followup.md).
const DefaultFollowupWindow = policy.DefaultFollowupWindow

// keptHits is what this node keeps of one partner's hits of one query:
// the tags of the hits only (never of a non-hit, never a value or an
// index into the values), in the order of their numbers.
type keptHits struct {
	RequestID string    `json:"request_id"`
	Query     string    `json:"query"`
	Partner   string    `json:"partner"`
	User      string    `json:"user"` // who asked
	Kind      string    `json:"kind"`
	Epoch     uint64    `json:"epoch"`
	Mode      string    `json:"mode"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"` // the end of the follow-up window: erased after
	Tags      []keptTag `json:"tags"`    // hit number n is Tags[n-1]
}

// keptTag is the follow-up tag of one hit, and the reach it hit under.
type keptTag struct {
	Reach string `json:"reach"`
	Tag   []byte `json:"tag"`
}

// hitKeeper keeps the tags of a query's hits (*hitStore).
type hitKeeper interface {
	keep(ctx context.Context, k *keptHits) error
	window(partner string) time.Duration
}

// numberHits numbers hits (sorted as the answer lists them) for a
// follow-up: one number per distinct (reach, tag), in the order of first
// appearance, so that two lines of one identifier share a number. It
// returns the number of each hit and the tags by number.
func numberHits(hits []reachHit) ([]int, []keptTag) {
	nums := make([]int, len(hits))
	seen := make(map[string]int, len(hits))
	var tags []keptTag
	for i, h := range hits {
		k := h.reach + "\x00" + string(h.tag[:])
		n, ok := seen[k]
		if !ok {
			tags = append(tags, keptTag{Reach: h.reach, Tag: h.tag[:]})
			n = len(tags)
			seen[k] = n
		}
		nums[i] = n
	}
	return nums, tags
}

// keepHits keeps the tags of r's hits (hits, in r's order) for the
// follow-up window, and numbers r's hits. When they cannot be kept the
// hits stand, without numbers: nothing can be followed up.
func (q *querier) keepHits(ctx context.Context, p *queryPlan, r *httpapi.PartnerResult, epoch uint64, hits []reachHit) {
	if q.cfg.Hits == nil || len(hits) != len(r.Hits) {
		return
	}
	nums, tags := numberHits(hits)
	now := q.cfg.Now().UTC()
	k := &keptHits{RequestID: r.RequestID, Query: p.id, Partner: r.Agency, User: p.user.Name, Kind: p.req.Kind,
		Epoch: epoch, Mode: p.mode, Created: now, Expires: now.Add(q.cfg.Hits.window(r.Agency)), Tags: tags}
	if err := q.cfg.Hits.keep(ctx, k); err != nil {
		q.cfg.Log.Warn("hits not kept for a follow-up", "query", p.id, "partner", r.Agency, "err", err)
		return
	}
	r.HitNumbers = nums
}

// hitStore keeps the tags of hits in the data group's records and erases
// them after the window: the sweep deletes the records, then requests an
// erasure of the data group (the one a removal requests), which every
// replica carries out once it has stayed the latest for eraseQuiet.
type hitStore struct {
	data   *raftGroup
	policy livePolicy
	now    func() time.Time
	// erase requests an erasure of the data group
	// ((*holdings).requestErase); nil: none is requested.
	erase func(ctx context.Context) (string, error)
	// pending: records were deleted but their erasure not requested yet
	// (the sweep's goroutine only: the audit leader's poll loop).
	pending bool
}

// window is the follow-up window of partner: the limits file's, else
// DefaultFollowupWindow.
func (h *hitStore) window(partner string) time.Duration {
	return followupWindow(h.policy, partner)
}

func (h *hitStore) keep(ctx context.Context, k *keptHits) error {
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("keep hits of %s: %w", k.RequestID, err)
	}
	if _, err := h.data.Put(ctx, nsFollowupHits, k.RequestID, b); err != nil {
		return fmt.Errorf("keep hits of %s: %w", k.RequestID, err)
	}
	return nil
}

// lookup returns the hits kept of id, a request ID, or of id, a query ID,
// at partner. A request with no hits, or past its window, has none
// (httpapi.ErrNotFound).
func (h *hitStore) lookup(id, partner string) (*keptHits, error) {
	var k *keptHits
	if strings.HasPrefix(id, "q-") {
		if partner == "" {
			return nil, fmt.Errorf("follow-up of query %s: name the partner whose hits you follow up: %w", id, httpapi.ErrBadRequest)
		}
		err := h.data.Scan(nsFollowupHits, "", func(_ string, v []byte) error {
			var x keptHits
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("stored hits: %w", err)
			}
			if x.Query == id && x.Partner == partner && (k == nil || x.Created.After(k.Created)) {
				k = &x
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("follow-up of query %s: %w", id, err)
		}
	} else {
		b, err := h.data.Get(nsFollowupHits, strings.ToLower(id))
		switch {
		case errors.Is(err, ledger.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("follow-up of request %s: %w", id, err)
		default:
			k = new(keptHits)
			if err := json.Unmarshal(b, k); err != nil {
				return nil, fmt.Errorf("follow-up of request %s: stored hits: %w", id, err)
			}
			if partner != "" && k.Partner != partner {
				return nil, fmt.Errorf("follow-up of request %s: it was sent to %s, not %s: %w", id, k.Partner, partner, httpapi.ErrBadRequest)
			}
		}
	}
	if k == nil || !h.now().Before(k.Expires) {
		return nil, fmt.Errorf("follow-up of %s: no hits of it are kept here (it had none at %s, its part failed, or its follow-up window has closed): %w",
			id, orAny(partner), httpapi.ErrNotFound)
	}
	return k, nil
}

func orAny(partner string) string {
	if partner == "" {
		return "its partner"
	}
	return partner
}

// sweep erases the hits whose window has closed; it returns how many. The
// records are deleted from the replicated state at once; when any was,
// an erasure of the data group is requested, and every replica compacts
// it (Raft log, snapshots, badger's tables and value logs) once the
// request has stayed the latest for eraseQuiet, so the bytes leave every
// file too (docs/followup.md, "The window, and erasure"). An erasure
// that could not be requested is asked again at the next sweep.
func (h *hitStore) sweep(ctx context.Context) (int, error) {
	now := h.now()
	var old []string
	err := h.data.Scan(nsFollowupHits, "", func(key string, v []byte) error {
		var x keptHits
		if err := json.Unmarshal(v, &x); err != nil || !now.Before(x.Expires) {
			old = append(old, key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep kept hits: %w", err)
	}
	for i, key := range old {
		if _, err := h.data.Delete(ctx, nsFollowupHits, key); err != nil {
			h.pending = true // some may be deleted (this one too, if only the answer was lost)
			return i, fmt.Errorf("sweep kept hits: %w", err)
		}
	}
	if (len(old) > 0 || h.pending) && h.erase != nil {
		h.pending = true
		if _, err := h.erase(ctx); err != nil {
			return len(old), fmt.Errorf("sweep kept hits: %d deleted, their erasure not requested (asked again at the next sweep): %w", len(old), err)
		}
		h.pending = false
	}
	return len(old), nil
}

// tags returns the follow-up tags of hit numbers nums of k, or an error
// that names the first number that is no hit.
func (k *keptHits) tags(nums []int) ([]keptTag, error) {
	out := make([]keptTag, 0, len(nums))
	seen := make(map[int]bool, len(nums))
	for _, n := range nums {
		switch {
		case n < 1 || n > len(k.Tags):
			return nil, fmt.Errorf("follow-up of request %s: %d is not a hit of %s: its hits are numbered 1 to %d (xborder query prints #N beside each): %w",
				k.RequestID, n, k.Partner, len(k.Tags), httpapi.ErrBadRequest)
		case seen[n]:
			return nil, fmt.Errorf("follow-up of request %s: hit %d named twice: %w", k.RequestID, n, httpapi.ErrBadRequest)
		}
		seen[n] = true
		out = append(out, k.Tags[n-1])
	}
	return out, nil
}

// tagOf converts a kept tag.
func tagOf(t keptTag) psi.Tag {
	var x psi.Tag
	copy(x[:], t.Tag)
	return x
}

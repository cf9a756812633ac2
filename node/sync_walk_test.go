package node

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
)

// epochSync answers a sync of epoch 1 unknown_epoch (retired) and every
// other epoch unavailable (the partner's replicas have not built its sets
// yet, say).
type epochSync struct{}

func (epochSync) Sync(ctx context.Context, o exchange.Opener, peer exchange.PeerID, q exchange.SyncQuery) (*exchange.Synced, error) {
	if q.Epoch == 1 {
		return nil, &exchange.DeniedError{Agency: q.Owner, Reason: exchange.ReasonUnknownEpoch}
	}
	return nil, exchange.ErrUnavailable
}

// TestSyncRetiredThenUnavailable: a partner that retired the epoch of the
// pinned card and cannot serve the next one yet could not be synced now:
// unavailable, not the partner's refusal of the kind. testnet chaos: a
// query part reported denied unknown_epoch for it (the denial of the
// retired epoch came first in the joined error and was taken for the
// answer).
func TestSyncRetiredThenUnavailable(t *testing.T) {
	noLeaks(t)
	th := &card.Card{Agency: "TH", Replicas: []card.Replica{{PeerID: "p1"}},
		EpochKeys: []card.EpochKey{{Epoch: 1, Kind: "phone"}}}
	ps, err := openPartnerSets(partnerSetsConfig{Dir: filepath.Join(t.TempDir(), "partners"), Key: make([]byte, 32),
		Client: epochSync{}, Pins: fixedPins{"TH": th}, Metrics: newSyncMetrics(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	_, _, _, _, err = ps.partnerSet(context.Background(), "TH", "phone", exchange.ReachOpen)
	var d *exchange.DeniedError
	if errors.As(err, &d) || !errors.Is(err, exchange.ErrUnavailable) {
		t.Fatalf("partnerSet = %v; want unavailable, and no denial a query would report", err)
	}
}

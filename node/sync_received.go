package node

import (
	"encoding/hex"
	"errors"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/node/host"
)

// Log messages of the sync answers a replica received from a partner,
// with stable keys (partner, kind, reach, epoch, and version for the newest
// version sent, or reason). testnet chaos reads them to check that every
// answer an owner sent has its entry on the owner's ledger
// (docs/RELIABILITY.md).
const (
	logSyncReceived    = "sync answer received"
	logSyncDenied      = "sync denial received"
	logSyncUnavailable = "sync unavailable received"
)

// logReceived logs what a sync of (partner, kind, reach, epoch) brought: the
// newest version of the segments received (none when the copy was
// current: the owner sent nothing and recorded nothing), or the owner's
// denial, or that the replica asked was unavailable (answered = whether it
// said so or could not be reached at all), naming the replica. An answer
// that does not verify is not logged here.
func (ps *partnerSets) logReceived(partner, kind, reach string, epoch uint64, replica exchange.PeerID, got *exchange.Synced, err error) {
	var d *exchange.DeniedError
	switch {
	case errors.Is(err, exchange.ErrUnavailable):
		ps.log.Info(logSyncUnavailable, "partner", partner, "kind", kind, "reach", reach, "epoch", epoch, "replica", string(replica),
			"answered", !errors.Is(err, host.ErrUnreachable))
	case errors.As(err, &d):
		ps.log.Info(logSyncDenied, "partner", partner, "kind", kind, "reach", reach, "epoch", epoch, "reason", string(d.Reason))
	case err == nil && got != nil && len(got.Segments) > 0:
		ps.log.Info(logSyncReceived, "partner", partner, "kind", kind, "reach", reach, "epoch", epoch,
			"version", got.Segments[len(got.Segments)-1].Version, "segments", len(got.Segments), "request", hex.EncodeToString(got.ID[:]))
	}
}

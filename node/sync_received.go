package node

import (
	"encoding/hex"
	"errors"

	"github.com/xborder/xborder/exchange"
)

// Log messages of the sync answers a replica received from a partner,
// with stable keys (partner, kind, reach, epoch, and version for the newest
// version sent, or reason). testnet chaos reads them to check that every
// answer an owner sent has its entry on the owner's ledger
// (docs/RELIABILITY.md).
const (
	logSyncReceived = "sync answer received"
	logSyncDenied   = "sync denial received"
)

// logReceived logs what a sync of (partner, kind, reach, epoch) brought: the
// newest version of the segments received (none when the copy was
// current: the owner sent nothing and recorded nothing), or the owner's
// denial. Nothing else is logged (an unavailable owner sent no answer).
func (ps *partnerSets) logReceived(partner, kind, reach string, epoch uint64, got *exchange.Synced, err error) {
	var d *exchange.DeniedError
	switch {
	case errors.As(err, &d):
		ps.log.Info(logSyncDenied, "partner", partner, "kind", kind, "reach", reach, "epoch", epoch, "reason", string(d.Reason))
	case err == nil && got != nil && len(got.Segments) > 0:
		ps.log.Info(logSyncReceived, "partner", partner, "kind", kind, "reach", reach, "epoch", epoch,
			"version", got.Segments[len(got.Segments)-1].Version, "segments", len(got.Segments), "request", hex.EncodeToString(got.ID[:]))
	}
}

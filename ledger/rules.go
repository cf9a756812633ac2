package ledger

import (
	"context"
	"time"
)

// SetRetention commits d as the ledger's retention rule (stub).
func (l *Ledger) SetRetention(ctx context.Context, d time.Duration) (Receipt, error) {
	return Receipt{}, nil
}

// Retention returns the retention rule in force (stub).
func (l *Ledger) Retention() time.Duration { return l.cfg.Retention }

// Revoke commits replica id to the revocation list (stub).
func (l *Ledger) Revoke(ctx context.Context, id string) error { return nil }

// maxClockAhead is how far a leader's clock may run ahead of a majority's.
const maxClockAhead = 5 * time.Minute

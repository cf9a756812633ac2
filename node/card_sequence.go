package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/xborder/xborder/ledger"
)

// cardSequenceKey (audit group, nsNode) holds the highest card sequence
// any replica of the agency issued, 8 bytes big-endian.
const cardSequenceKey = "card/sequence"

// cardSequenceWait bounds recording a card sequence.
const cardSequenceWait = 5 * time.Second

// issueSequence returns a sequence for a new card: want (the issue time)
// or, when a replica of the agency already issued one as high, one above
// the highest issued, recorded (by compare-and-swap) before the card is
// signed. Each replica signs its own card, and their clocks differ (one
// may run far ahead): a sequence from the clock alone could fall below one
// a partner has pinned, and the partner would refuse the newer card.
// recorded is false when it could not be recorded (no quorum): the
// sequence is then the highest this replica has seen plus one, and the
// card must be signed again once it can.
func (c *cards) issueSequence(want uint64) (seq uint64, recorded bool) {
	ctx, cancel := context.WithTimeout(context.Background(), cardSequenceWait)
	defer cancel()
	for range 8 {
		if err := c.cfg.Audit.Linearize(ledger.FailFast(ctx)); err != nil {
			break
		}
		last, old, err := c.lastSequence()
		if err != nil {
			break
		}
		seq = max(want, last+1)
		_, err = c.cfg.Audit.Swap(ledger.FailFast(ctx), nsNode, cardSequenceKey, old, binary.BigEndian.AppendUint64(nil, seq))
		if err == nil {
			return seq, true
		}
		if !errors.Is(err, ledger.ErrConflict) {
			c.cfg.Log.Warn("card sequence not recorded", "err", err)
			break
		}
	}
	last, _, _ := c.lastSequence()
	return max(want, last+1), false
}

// lastSequence reads the highest card sequence recorded and the digest of
// its record (the zero digest when there is none).
func (c *cards) lastSequence() (uint64, ledger.Digest, error) {
	b, err := c.cfg.Audit.Get(nsNode, cardSequenceKey)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return 0, ledger.Digest{}, nil
	case err != nil:
		return 0, ledger.Digest{}, fmt.Errorf("read card sequence: %w", err)
	case len(b) != 8:
		return 0, ledger.Digest{}, fmt.Errorf("read card sequence: %d bytes; want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), sha256.Sum256(b), nil
}

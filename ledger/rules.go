package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Replicated rules: state that Apply reads to decide, set by committed
// commands (opRule) so that every replica decides the same.
//
//   - retention: how long entry bodies are kept. Apply refuses a prune
//     whose date is inside it (outcome "retention", ErrRetention). Until
//     one is committed Apply uses DefaultRetention, and Prune first
//     commits Config.Retention as the rule.
//   - revoked replicas: replica IDs whose certificates may no longer open
//     this group's channel (tlsnet refuses them after the TLS handshake,
//     before any Raft or forwarding byte). Written when a replica is
//     removed (Revoke); AddVoter refuses a revoked ID.
const (
	ruleRetention = "retention" // value: the retention, ns, 8 bytes big-endian
	ruleRevoke    = "revoke"    // value: the replica ID

	keyRetention = "s/g/retention"
	pfxRevoked   = "s/g/revoked/" // + replica ID: the command time it was revoked (ns)

	// MaxRetention bounds a retention rule: a hundred years.
	MaxRetention = 36500 * 24 * time.Hour
)

// ErrRevoked: the replica was removed and its certificate revoked; it may
// not be added again under that ID. Give it a new replica ID and
// certificate.
var ErrRevoked = errors.New("replica revoked")

// SetRetention commits d as the ledger's retention rule: from then on
// Apply refuses, on every replica, a prune of bodies younger than d (by
// the command's time). d must be positive and at most MaxRetention. The
// node calls it when a policy is applied (the limits file's retention).
func (l *Ledger) SetRetention(ctx context.Context, d time.Duration) (Receipt, error) {
	if d <= 0 || d > MaxRetention {
		return Receipt{}, fmt.Errorf("set retention %v: want a positive period of at most 100 years: %w", d, ErrInvalid)
	}
	c := &command{Op: opRule, Key: ruleRetention, Value: u64(uint64(d))}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("set retention: %w", err)
	}
	return o.receipt(c.ID), nil
}

// Retention returns the retention rule in force on this replica's state:
// the last one committed, or DefaultRetention when none has been.
func (l *Ledger) Retention() time.Duration {
	d, _, err := l.retention()
	if err != nil {
		return DefaultRetention
	}
	return d
}

// retention reads the rule and whether one was committed.
func (l *Ledger) retention() (d time.Duration, ok bool, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		d, ok, err = retentionRule(txn)
		return err
	})
	return d, ok, err
}

func retentionRule(txn getter) (time.Duration, bool, error) {
	b, ok, err := getBytes(txn, []byte(keyRetention))
	if err != nil || !ok {
		return DefaultRetention, false, err
	}
	if len(b) != 8 {
		return 0, false, fmt.Errorf("retention rule of %d bytes: %w", len(b), ErrCorrupt)
	}
	return time.Duration(binary.BigEndian.Uint64(b)), true, nil
}

// Revoke commits the replica id to this group's revocation list: its
// certificate can no longer open the group's channel on any replica
// (counted in Status.RefusedConns, and logged), and AddVoter refuses it.
// Call it after RemoveServer; revoking a member does not remove it.
func (l *Ledger) Revoke(ctx context.Context, id string) error {
	if id == "" || checkField(id) != nil {
		return fmt.Errorf("revoke replica %q: %w", id, ErrInvalid)
	}
	if _, err := l.submit(ctx, &command{Op: opRule, Key: ruleRevoke, Value: []byte(id)}); err != nil {
		return fmt.Errorf("revoke replica %s: %w", id, err)
	}
	return nil
}

// Revoked reports whether this replica's state lists id as revoked.
func (l *Ledger) Revoked(id string) bool {
	var ok bool
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		_, ok, err = getBytes(txn, []byte(pfxRevoked+id))
		return err
	})
	// A state that cannot be read admits no one.
	return ok || err != nil
}

// admitPeer is the transport's admission check of a peer that opens this
// group's channel (tlsnet.Layer.SetAdmit): revoked replicas are refused.
func (l *Ledger) admitPeer(peer string) error {
	if !l.Revoked(peer) {
		return nil
	}
	l.refusedConns.Add(1)
	l.log.Warn("connection of a revoked replica refused", "peer", peer)
	return ErrRevoked
}

// applyRule runs an opRule command in Apply.
func (f *fsm) applyRule(txn *badger.Txn, m *meta, c *command, o *outcome) error {
	switch c.Key {
	case ruleRetention:
		if len(c.Value) != 8 {
			break
		}
		d := time.Duration(binary.BigEndian.Uint64(c.Value))
		if d <= 0 || d > MaxRetention {
			break
		}
		return txn.Set([]byte(keyRetention), c.Value)
	case ruleRevoke:
		id := string(c.Value)
		if id == "" || checkField(id) != nil {
			break
		}
		return txn.Set([]byte(pfxRevoked+id), u64(uint64(m.time)))
	}
	o.Code = "invalid"
	return nil
}

// pruneAllowed applies the retention rule to a prune command: its date
// must be no later than the command's time minus the retention.
func pruneAllowed(txn getter, m *meta, before int64) (bool, error) {
	d, _, err := retentionRule(txn)
	if err != nil {
		return false, err
	}
	return before <= m.time-int64(d), nil
}

package ledger

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits on what a command may carry (docs/ledger-format.md, "Limits").
// Each is checked twice: by the replica that submits a command, before it
// reaches Raft (command.check, ErrTooLarge or ErrInvalid to the caller),
// and again in Apply, on every replica, whatever the leader sent: there a
// command over a limit gets the outcome "too_large" ("invalid" for a
// malformed one), the same on every replica, rather than a storage error
// that would halt them all (badger refuses a key over 65,000 bytes) or a
// value that no snapshot could carry (maxSnapshotValue). The other string
// limits are MaxField: request IDs and every other field of an entry,
// record namespaces and keys, budget keys.
const (
	// MaxCommandID is the longest command ID (WithCommandID), in bytes.
	MaxCommandID = 4096
	// MaxRecordValue is the largest record value (Put), in bytes: a
	// batch of holdings rows (node: 20,000 rows of at most 516 bytes)
	// fits, and it is well under a snapshot's limit of 64 MiB a value.
	MaxRecordValue = 10 << 20
	// MaxReservations is the most budget reservations of one admission.
	MaxReservations = 64
)

const (
	// maxCommandSize bounds one encoded command: a record value and
	// everything else a command carries.
	maxCommandSize = MaxRecordValue + 64<<10
	// maxEntrySize bounds the command bytes of one Raft entry. The
	// leader's batches stay under it (a first command of at most
	// maxCommandSize, then at most maxBatchBytes); an entry over it is
	// refused whole in Apply.
	maxEntrySize = 16 << 20
	// maxBatch bounds the commands of one Raft entry (group commit,
	// batch.go); a batch entry with more is refused whole in Apply.
	maxBatch = 256
	// maxBatchBytes bounds the encoded commands of one batch past its
	// first: the batcher sends a batch before it would grow past it.
	maxBatchBytes = 1 << 20
	// pruneChunk bounds the deletions of one prune command (one
	// transaction); Apply refuses a prune command that asks for more.
	pruneChunk = 1000
	// pruneScan bounds the command outcomes and request IDs that one
	// prune command reads: each command reads on from where the one
	// before it stopped, so no Apply reads the whole keyspace.
	pruneScan = 10 * pruneChunk
)

// Compile-time checks of the limits against badger's and the transport's:
// each constant expression below is negative, and fails to compile, when
// the limit does not fit.
const (
	badgerMaxKey = 65000 // badger's longest key
	// A command ID, a budget key with each "DAY" segment (4 bytes with its
	// slash) grown to a date (11), a record key: all are badger keys.
	_ = uint(badgerMaxKey - len(pfxCommand) - MaxCommandID)
	_ = uint(badgerMaxKey - len(pfxBudget) - MaxField/4*11)
	_ = uint(badgerMaxKey - len(pfxRecord) - 2*MaxField - 1)
	// A record value fits a snapshot.
	_ = uint(maxSnapshotValue - MaxRecordValue - 1)
	// A forwarded command fits a frame (JSON, base64).
	_ = uint(maxFrame - (maxCommandSize+2)/3*4 - 64<<10)
	// The leader's batches fit an entry.
	_ = uint(maxEntrySize - maxCommandSize - maxBatchBytes - maxBatch*16)
)

// ErrTooLarge is returned for a command over one of the limits above, by
// the replica that submits it (nothing reached Raft) or as the outcome of
// a command that the leader let through (nothing was written). It is an
// ErrInvalid: split the record, shorten the ID, reserve fewer budgets.
var ErrTooLarge = fmt.Errorf("over a ledger limit (docs/ledger-format.md, Limits): %w", ErrInvalid)

// codeTooLarge is the outcome code of a command over a limit.
const codeTooLarge = "too_large"

// check returns nil when c is within the limits, else an error wrapping
// ErrTooLarge, or ErrInvalid for a malformed command. It depends on c
// alone, so Apply gets the same answer on every replica.
func (c *command) check() error {
	if c.Op == opBatch {
		if len(c.Batch) > maxBatch {
			return fmt.Errorf("batch of %d commands, at most %d: %w", len(c.Batch), maxBatch, ErrTooLarge)
		}
		for _, sub := range c.Batch {
			if sub == nil || sub.Op == opBatch {
				return fmt.Errorf("batch member empty or a batch: %w", ErrInvalid)
			}
			if err := sub.check(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := checkCommandID(c.ID); err != nil {
		return err
	}
	switch c.Op {
	case opAdmit:
		if len(c.PolicyVersion) > MaxField {
			return fmt.Errorf("policy version of %d bytes, at most %d: %w", len(c.PolicyVersion), MaxField, ErrTooLarge)
		}
		if len(c.Reserve) > MaxReservations {
			return fmt.Errorf("%d reservations, at most %d: %w", len(c.Reserve), MaxReservations, ErrTooLarge)
		}
		for _, r := range c.Reserve {
			if len(r.Key) > MaxField {
				return fmt.Errorf("budget key of %d bytes, at most %d: %w", len(r.Key), MaxField, ErrTooLarge)
			}
			if !utf8.ValidString(r.Key) {
				return fmt.Errorf("budget key is not UTF-8: %w", ErrInvalid)
			}
		}
	case opPut, opDelete, opSwap:
		if err := checkRecordKey(c.NS, c.Key); err != nil {
			return err
		}
		if len(c.Value) > MaxRecordValue {
			return fmt.Errorf("record value of %d bytes, at most %d: %w", len(c.Value), MaxRecordValue, ErrTooLarge)
		}
	case opPrune:
		if c.Max > pruneChunk {
			return fmt.Errorf("prune of %d deletions in one command, at most %d: %w", c.Max, pruneChunk, ErrTooLarge)
		}
	}
	return nil
}

func checkCommandID(id string) error {
	if id == "" {
		return fmt.Errorf("no command ID: %w", ErrInvalid)
	}
	if len(id) > MaxCommandID {
		return fmt.Errorf("command ID of %d bytes, at most %d: %w", len(id), MaxCommandID, ErrTooLarge)
	}
	return nil
}

// code is the outcome code of a command that check refused.
func code(err error) string {
	if errors.Is(err, ErrTooLarge) {
		return codeTooLarge
	}
	return "invalid"
}

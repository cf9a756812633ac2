package ledger

import (
	"errors"
)

// Sentinel errors. Each says what the caller should do.
var (
	// ErrNoQuorum: no leader could commit the command within the bounded
	// wait. Nothing may be sent or answered (no audit, no answer); retry
	// later with the same command ID, or look its outcome up with Outcome.
	ErrNoQuorum = errors.New("ledger has no quorum")
	// ErrReplay: Admit saw the request ID before, within the replay
	// window. A denial entry was appended; refuse the request.
	ErrReplay = errors.New("request ID already seen")
	// ErrStalePolicy: Admit was given a decision made on a policy version
	// that is not the one in force. A denial entry was appended; decide
	// again with the current policy and submit a new request.
	ErrStalePolicy = errors.New("decision made on a policy version not in force")
	// ErrBudget: a budget of the admission would be exceeded. A denial
	// entry was appended; refuse the request.
	ErrBudget = errors.New("budget exhausted")
	// ErrCorrupt: the stored entries and tree disagree, or stored data
	// cannot be decoded. The replica refuses to serve: restore its
	// directory from a backup or re-join it from a healthy replica.
	ErrCorrupt = errors.New("ledger storage corrupt")
	// ErrHalted: a storage error stopped this replica's state machine so
	// that it would not diverge. Fix the storage (disk full, permissions)
	// and restart the replica; it replays the Raft log from where it stopped.
	ErrHalted = errors.New("ledger replica halted")
	// ErrClosed: the ledger was closed.
	ErrClosed = errors.New("ledger closed")
	// ErrNotFound: no record or entry with that key or index.
	ErrNotFound = errors.New("not found in ledger")
	// ErrRetention: a prune date inside the retention period. Choose an
	// earlier date.
	ErrRetention = errors.New("prune date inside the retention period")
	// ErrConflict: Swap found the record changed since it was read
	// (another writer won). Read it again and decide anew.
	ErrConflict = errors.New("record changed since it was read")
)

// ErrInvalid is returned for an entry or argument the ledger will not
// accept (unknown type, a field too long or not UTF-8). Fix the input.
var ErrInvalid = errors.New("invalid ledger input")

var (
	errShort    = errors.New("truncated")
	errTrailing = errors.New("trailing bytes")
)

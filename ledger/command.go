package ledger

import (
	"fmt"
)

// Command operations.
const (
	opAppend = "append"
	opAdmit  = "admit"
	opPut    = "put"
	opDelete = "delete"
	opPrune  = "prune"
	opRule   = "rule" // a replicated rule (rules.go): Key names it, Value holds it
	// opSwap replaces the record (NS, Key) with Value only while its
	// current value has the SHA-256 Expect (all zeros: only while it is
	// absent); otherwise its outcome is "conflict" and nothing changes.
	// With an Entry (SwapAppend), the entry is appended iff the record is
	// written; a swap without one (Swap, and every swap logged before
	// SwapAppend) appends nothing. With Remove (DeleteAppend) the record
	// is deleted instead of written.
	opSwap = "swap"
	// opBatch carries several commands in one Raft entry (group commit,
	// made by the leader); each keeps its own ID, time and outcome.
	opBatch = "batch"
)

// command is what goes through Raft, in the binary encoding of codec.go
// (encodeCommand). The JSON tags read commands that logs and snapshots
// written before that encoding hold (decodeJSONCommand).
type command struct {
	Op   string `json:"op"`
	ID   string `json:"id"`   // command ID: a retry with the same ID gets the first outcome
	Time int64  `json:"time"` // the leader's time, Unix ns (clamped in Apply)

	Entry *Entry `json:"entry,omitempty"` // append, admit, prune (the prune entry), swap (optional)

	// admit
	PolicyVersion string        `json:"policy_version,omitempty"`
	Reserve       []Reservation `json:"reserve,omitempty"`
	ReplayWindow  int64         `json:"replay_window,omitempty"` // ns

	// put, delete
	NS    string `json:"ns,omitempty"`
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`

	// swap: SHA-256 of the value the record must hold (zero: absent)
	Expect Digest `json:"expect,omitempty"`
	// swap: delete the record instead of writing Value (DeleteAppend)
	Remove bool `json:"remove,omitempty"`

	// prune
	Before int64  `json:"before,omitempty"` // Unix ns
	Max    int    `json:"max,omitempty"`    // most bodies deleted by this command
	Done   uint64 `json:"done,omitempty"`   // bodies pruned by earlier commands of the same prune
	After  []byte `json:"after,omitempty"`  // the key the prune reads on from (outcome.Cursor of the command before)

	// batch
	Batch []*command `json:"batch,omitempty"`
}

// outcome is what Apply returns for a command and keeps under its ID.
type outcome struct {
	Index     uint64 `json:"index"`      // ledger index of the entry appended (append, admit)
	Appended  bool   `json:"appended"`   // whether an entry was appended
	RaftIndex uint64 `json:"raft_index"` // raft index of the command
	Time      int64  `json:"time"`       // clamped command time
	Code      string `json:"code,omitempty"`
	Pruned    uint64 `json:"pruned,omitempty"` // prune: bodies pruned so far
	More      bool   `json:"more,omitempty"`   // prune: bodies left before the date
	// Cursor is, for a prune with More, the key the next command of the
	// prune reads on from (its After). Apply returns it, the forwarding
	// carries it, but the outcome kept under the command ID does not: a
	// retried prune command reads from the start again, which is slower
	// but finds the same keys, since those deleted are gone.
	Cursor []byte `json:"cursor,omitempty"`
}

// Outcome codes and their sentinel errors.
var codeErrors = map[string]error{
	"replay":       ErrReplay,
	"stale_policy": ErrStalePolicy,
	"budget":       ErrBudget,
	"invalid":      ErrInvalid,
	codeTooLarge:   ErrTooLarge,
	"retention":    ErrRetention,
	"conflict":     ErrConflict,
}

func (o outcome) err() error {
	if o.Code == "" {
		return nil
	}
	if err, ok := codeErrors[o.Code]; ok {
		return err
	}
	return fmt.Errorf("command failed: %s", o.Code)
}

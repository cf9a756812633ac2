package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// NewCommandID returns a fresh random command ID.
func NewCommandID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type cmdIDKey struct{}

// WithCommandID returns a context that makes the next write carry id as its
// command ID. A caller that retries a write after an ambiguous failure
// passes the ID of the first attempt (Receipt.CommandID or its own), and
// gets the first attempt's outcome without a second append.
func WithCommandID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, cmdIDKey{}, id)
}

func commandID(ctx context.Context) string {
	if id, ok := ctx.Value(cmdIDKey{}).(string); ok && id != "" {
		return id
	}
	return NewCommandID()
}

// Receipt says where a command landed.
type Receipt struct {
	Index     uint64    // ledger index of the appended entry (valid when Appended)
	Appended  bool      // whether the command appended an entry
	RaftIndex uint64    // Raft index of the command
	CommandID string    // the command's ID, for retries and Outcome
	Time      time.Time // the entry time the leader gave it
}

func (o outcome) receipt(id string) Receipt {
	return Receipt{Index: o.Index, Appended: o.Appended, RaftIndex: o.RaftIndex, CommandID: id, Time: time.Unix(0, o.Time).UTC()}
}

// submit commits c through the leader (this replica, or forwarded to it
// with the same command ID; the leader stamps the time) and returns its
// outcome once committed and applied on the leader. A forwarded command is
// then also awaited on this replica, within the write's deadline, so that
// this replica's reads see it. While no leader commits it, submit retries
// until the context's deadline or Config.WriteTimeout, then fails with
// ErrNoQuorum.
func (l *Ledger) submit(ctx context.Context, c *command) (outcome, error) {
	if err := l.fsm.halted(); err != nil {
		return outcome{}, err
	}
	if c.ID == "" {
		c.ID = commandID(ctx)
	}
	// The limits hold in Apply too; checked here, a command over one is
	// refused before it costs a Raft round.
	if err := c.check(); err != nil {
		return outcome{}, err
	}
	data, err := encodeCommand(c)
	if err != nil {
		return outcome{}, fmt.Errorf("encode command: %w", err)
	}
	ctx, cancel := context.WithDeadline(ctx, deadlineOf(ctx, l.cfg.WriteTimeout))
	defer cancel()
	resp, err := l.onLeader(ctx, &fwdRequest{Op: fwdCommand, Command: data, local: true})
	if err != nil {
		return outcome{}, fmt.Errorf("commit command %s: %w", c.ID, err)
	}
	if resp.Outcome == nil {
		return outcome{}, fmt.Errorf("commit command %s: leader answered without an outcome", c.ID)
	}
	o := *resp.Outcome
	// Committed: a replica that lags behind still answers, its reads
	// catch up within a heartbeat.
	_ = l.waitApplied(ctx, o.RaftIndex)
	return o, o.err()
}

// Append validates e, commits it through Raft and returns its receipt once
// a quorum holds it. The ledger sets Version, Index, Time and BodyHash, and
// Replica when empty; a zero Salt is replaced with a random one.
func (l *Ledger) Append(ctx context.Context, e Entry) (Receipt, error) {
	if err := l.prepare(&e); err != nil {
		return Receipt{}, fmt.Errorf("append entry: %w", err)
	}
	if r, ok := l.defectAppend(&e); ok {
		return r, nil
	}
	c := &command{Op: opAppend, Entry: &e}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("append entry: %w", err)
	}
	return o.receipt(c.ID), nil
}

func (l *Ledger) prepare(e *Entry) error {
	if e.Agency == "" {
		e.Agency = l.cfg.Agency
	}
	if e.Replica == "" {
		e.Replica = l.cfg.ReplicaID
	}
	if e.Salt == (Digest{}) {
		rand.Read(e.Salt[:])
	}
	e.Pruned = false
	return e.validate()
}

// Outcome looks up the command with the given ID on this replica's state,
// for a caller whose call failed ambiguously: it returns the command's
// receipt and the error the command ended with (nil, ErrBudget, ErrReplay,
// …), or ErrNotFound when this replica has not applied such a command.
func (l *Ledger) Outcome(id string) (Receipt, error) {
	if err := checkCommandID(id); err != nil {
		return Receipt{}, fmt.Errorf("look up command: %w", err)
	}
	var o outcome
	err := l.db.View(func(txn *badger.Txn) error {
		b, ok, err := getBytes(txn, []byte(pfxCommand+id))
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		o, err = decodeOutcome(b)
		return err
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("look up command %s: %w", id, err)
	}
	return o.receipt(id), o.err()
}

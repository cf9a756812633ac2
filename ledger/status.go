package ledger

import (
	"time"
)

// Status is a replica's view of the ledger.
type Status struct {
	ReplicaID string
	Origin    string
	State     string // Raft state: Leader, Follower, Candidate, Shutdown
	Leader    string // leader's replica ID, "" when none is known
	Quorum    bool   // a leader is known
	Healthy   bool   // false once the state machine halted
	Err       error  // why it halted
	Applied   uint64 // last Raft index applied to the state
	Commit    uint64 // Raft commit index
	Size      uint64 // number of entries
	Policy    string // policy version in force

	// Counters since Open. Batches and BatchedCommands count the group
	// commits this replica sent to Raft as leader (their ratio is the mean
	// batch size); StateSyncs and StateSyncTime, the syncs of the state
	// database to disk (periodic, checkpoints, tree heads) and the time
	// they took: slow syncs slow every replica's Raft log on that disk.
	Batches, BatchedCommands uint64
	StateSyncs               uint64
	StateSyncTime            time.Duration
	// ForwardDials counts the connections this replica opened to forward
	// calls to the leader. Idle ones are kept for the next calls, so it
	// should grow only with the number of callers forwarding at once and
	// with leader changes; a steady rise means connections are being lost.
	ForwardDials uint64
	// RefusedConns counts the connections of revoked replicas refused when
	// they opened this group's channel, and RefusedRPCs the Raft RPCs
	// refused before Raft saw them (a peer not a voter, or speaking for
	// another replica than its certificate names): either should stay at
	// zero; each refusal is also logged (rules.go, guard.go).
	RefusedConns, RefusedRPCs uint64
}

// Status returns this replica's view.
func (l *Ledger) Status() Status {
	m := l.fsm.meta()
	_, leader := l.raft.LeaderWithID()
	err := l.fsm.halted()
	return Status{
		ReplicaID: l.cfg.ReplicaID, Origin: l.origin, State: l.raft.State().String(),
		Leader: string(leader), Quorum: leader != "", Healthy: err == nil, Err: err,
		Applied: m.applied, Commit: l.raft.CommitIndex(), Size: m.size, Policy: m.policy,
		Batches: l.batches.Load(), BatchedCommands: l.batchedCmds.Load(),
		StateSyncs: l.stateSyncs.Load(), StateSyncTime: time.Duration(l.stateSyncNanos.Load()),
		ForwardDials: l.fwdDials.Load(),
		RefusedConns: l.refusedConns.Load(), RefusedRPCs: l.refusedRPCs.Load(),
	}
}

// RaftApplied returns the last Raft index this replica has applied,
// counting the entries the state machine never sees (no-ops and
// configuration changes), so that it can be compared with Status.Commit to
// tell whether the replica has caught up.
func (l *Ledger) RaftApplied() uint64 { return l.raft.AppliedIndex() }

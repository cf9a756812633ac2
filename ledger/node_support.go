package ledger

// RaftApplied returns the last Raft index this replica has applied,
// counting the entries the state machine never sees (no-ops and
// configuration changes), so that it can be compared with Status.Commit to
// tell whether the replica has caught up.
func (l *Ledger) RaftApplied() uint64 { return l.raft.AppliedIndex() }

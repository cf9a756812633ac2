// Package ledger implements xborder's audit ledger: an append-only log of
// audit entries, replicated by Raft (hashicorp/raft), stored in badger, and
// made tamper-evident by an RFC 6962 Merkle tree with C2SP checkpoints
// signed as notes by the agency's Ed25519 key.
//
// # How
//
// Every write is a command with a command ID, committed through Raft and
// applied by a deterministic state machine on badger:
//
//	Append / Admit / Put / Delete / Prune
//	        │ command{op, id, leader time}
//	        ▼
//	   raft log (badger, prefix r/) ──quorum──▶ Apply batch: one badger txn
//	                                             ├─ entries s/l/, bodies s/b/
//	                                             ├─ tree hashes s/h/ (tlog)
//	                                             ├─ outcomes s/c/, budgets s/u/,
//	                                             │  request IDs s/q/, records s/r/
//	                                             └─ last applied raft index s/m/
//
// The state machine keeps the last applied Raft index in the same
// transaction as each batch and skips anything at or below it, so a replay
// of the Raft log after a restart appends nothing twice (Raft runs with
// NoSnapshotRestoreOnStart: the state on disk is already current). A retry
// with the same command ID gets the first outcome and appends nothing
// (WithCommandID, Outcome). Time comes from the replica that submits the
// command and is clamped so that it never goes backwards. A storage error
// inside Apply halts the replica (ErrHalted) rather than letting it diverge.
//
// Entries have a closed, versioned schema: a canonical binary header (the
// leaf) plus the hash of a salted body that holds the officers' personal
// data and case details. Bodies can be pruned after the retention period;
// leaves, tree and proofs stay valid. The leaf layout is specified in
// docs/ledger-format.md. Entry indexes are contiguous from 0.
//
// A timer outside Apply signs a checkpoint on the leader at most every
// Config.CheckpointInterval while the tree grows. On Open the replica checks
// every stored leaf against its hash and body, checks that the stored tree
// reproduces its last checkpoint, rebuilds the tree hashes added since, and
// refuses to start with ErrCorrupt when anything disagrees. Export writes a
// directory that Verify checks offline with only the agency's public key.
//
// Admit is the single command that makes an inbound query's admission
// atomic: replay window, policy version in force, budget reservations and
// the append, or a denial entry that says why.
//
// Reads through Entries and Entry are not logged; Read is the auditor's read
// and appends a ledger_read entry before it answers.
//
// # Security
//
// The tree and the signed checkpoints detect corruption and any change to
// an exported ledger, but not an agency that rewrites its own log and signs
// a new history: partners witnessing each other's checkpoints close that
// gap (a later issue). Entry headers must hold no personal data of data
// subjects; officers' data goes in bodies, which are pruned after
// Config.Retention. Bodies are salted so that their hashes reveal nothing
// once pruned. Whoever reads the badger directory reads all of it: set
// Config.EncryptionKey for encryption at rest. Nothing here logs entry
// contents or keys.
package ledger

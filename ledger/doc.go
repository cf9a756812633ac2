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
//	                                             ├─ entry records s/e/: leaf,
//	                                             │  salted body, tree hashes (tlog)
//	                                             ├─ outcomes s/c/, budgets s/u/,
//	                                             │  request IDs s/q/, records s/r/
//	                                             └─ last applied raft index s/m/
//
// The state machine keeps the last applied Raft index in the same
// transaction as each batch and skips anything at or below it, so a replay
// of the Raft log after a restart appends nothing twice (Raft runs with
// NoSnapshotRestoreOnStart: the state on disk is already current). A retry
// with the same command ID gets the first outcome and appends nothing
// (WithCommandID, Outcome). Time comes from the leader and is clamped so
// that it never goes backwards; a leader whose clock is more than five
// minutes ahead of a majority of the voters' does not write (ErrClockAhead)
// and hands leadership over. Retention is a replicated rule (SetRetention)
// that Apply checks every prune against. A storage error
// inside Apply halts the replica (ErrHalted) rather than letting it diverge.
//
// Entries have a closed, versioned schema: a canonical binary header (the
// leaf) plus the hash of a salted body that holds the officers' personal
// data and case details. Bodies can be pruned after the retention period;
// leaves, tree and proofs stay valid. The leaf layout is specified in
// docs/ledger-format.md. Entry indexes are contiguous from 0.
//
// A timer outside Apply signs a checkpoint on the leader at most every
// Config.CheckpointInterval while the tree grows. On Open the replica first
// restores its state from the latest Raft snapshot when the state is behind
// it or a restore was cut short; then it checks that the stored tree
// reproduces its last checkpoint and verified tree head, checks every leaf
// added since against its hash and body, rebuilds their tree hashes, and
// refuses to start with ErrCorrupt when anything disagrees. Check checks a
// stopped replica's directory in full. Export writes a directory that
// format.Verify checks offline with only the agency's public key.
//
// Admit is the single command that makes an inbound query's admission
// atomic: replay window, policy version in force, budget reservations and
// the append, or a denial entry that says why.
//
// Reads through Entries and Entry are not logged; Read is the auditor's read
// and appends a ledger_read entry before it answers.
//
// # Replicas
//
// Config.Transport (a tlsnet channel in production) carries both Raft and
// the forwarding of writes: each connection starts with one byte that says
// which. A write on a follower (Append, Admit, Put, Delete, Prune, and
// AddVoter, RemoveServer) is forwarded to the leader with its command ID,
// committed there, and answered once applied on the leader (and, within
// the write's deadline, on the follower too); while no leader answers it
// retries until Config.WriteTimeout and then fails with ErrNoQuorum; under
// a FailFast context it fails at once when Quorum says this replica
// cannot commit (no leader known, or one silent past the election
// timeout). The
// leader batches concurrent commands into one Raft entry (group commit).
// Local reads are stale reads; Linearize makes the next read linearizable
// (read index through the leader, then wait for local apply), and Read and
// LookupOutcome are linearizable. The first replica bootstraps; AddVoter
// adds others, which receive the log or a snapshot that Restore checks in
// full before serving; RemoveServer removes any replica, the leader too.
//
// # Packages
//
// The entry schema, the leaf and body encodings, checkpoints, the export
// files and Verify are in package ledger/format, which imports neither
// badger, Raft nor a network, so that an auditor's verifier builds from it
// alone; this package keeps the names its callers use (Header, Body, Type,
// Outcome, Checkpoint, EncodeLeaf, ParseCheckpoint, …) as aliases.
// ledger/tlsnet is the mutual-TLS transport, ledger/raftbadger Raft's log
// and stable store on badger, and ledger/internal/hclogslog Raft's logger
// on log/slog. docs/ledger.md lists this package's files by concern.
//
// # Security
//
// The tree and the signed checkpoints detect corruption and any change to
// an exported ledger, but not an agency that rewrites its own log and signs
// a new history: partners witnessing each other's checkpoints close that
// gap (a later issue). The forwarding server answers only peers that the
// transport authenticated (tlsnet.PeerID) and that are members of the Raft
// configuration; AddVoter refuses a replica that does not answer over the
// authenticated transport as the ID it is added under. Raft RPCs are taken
// only from voters, each speaking for the replica its certificate names
// (guard.go); a removed replica revoked with Revoke is refused right after
// the TLS handshake. Entry headers must hold no personal data of data
// subjects; officers' data goes in bodies, which are pruned after
// the retention rule. Bodies are salted so that their hashes reveal nothing
// once pruned. Whoever reads the badger directory reads all of it: set
// Config.EncryptionKey for encryption at rest (the badger databases and
// Raft's snapshots, snapcrypt.go). A record deleted or overwritten stays
// in older snapshots, the Raft log and badger's files until Compact, which
// on a ledger opened with Config.Erasable removes it from every file of
// the replica (FindOnDisk checks it, reading as one holding the key).
// Nothing here logs entry contents or keys.
package ledger

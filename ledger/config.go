package ledger

import (
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// Defaults for zero Config fields.
const (
	DefaultRetention          = 5 * 365 * 24 * time.Hour // five years
	DefaultCheckpointInterval = time.Second
	DefaultReplayWindow       = 24 * time.Hour
	// DefaultWriteTimeout bounds how long a write waits for a leader when
	// its context has no earlier deadline.
	DefaultWriteTimeout = 5 * time.Second
)

// Config configures Open. Every zero value is a documented default.
type Config struct {
	// Dir is the ledger directory, created if missing. It holds two badger
	// databases, the state (Dir/state) and the Raft log (Dir/raft), and Raft
	// snapshots (Dir/snapshots).
	Dir string
	// ReplicaID is the Raft server ID. Empty: the ID stored in Dir by an
	// earlier Open; a new directory needs one.
	ReplicaID string
	// Agency is the agency code, e.g. "GB"; the origin is
	// "xborder.ledger/<Agency>". Empty: the code stored in Dir.
	Agency string
	// Signer is the agency key that signs checkpoints. Nil: this replica
	// never signs (its checkpoints come from a replica that has the key).
	// Once a directory has seen a key, another key is refused.
	Signer ed25519.PrivateKey
	// Transport carries Raft and the forwarding of writes to the leader:
	// each connection starts with one byte that says which (docs/ledger.md).
	// In production it is a tlsnet Layer (one channel per group); the
	// forwarding server serves only peers that tlsnet authenticated and
	// that are members of the configuration. Nil: a plain TCP listener on
	// 127.0.0.1, only for a single replica (forwarding then refuses every
	// peer).
	Transport raft.StreamLayer
	// Bootstrap makes this replica the first of a new cluster when Dir
	// holds no Raft state yet. Ignored otherwise. A replica opened without
	// it waits until a member adds it (AddVoter).
	Bootstrap bool
	// WriteTimeout bounds how long a write, a membership change or
	// Linearize waits for a leader to commit it, when the context has no
	// earlier deadline; then it fails with ErrNoQuorum. Zero:
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives the ledger's and Raft's logs. Nil: discard.
	Logger *slog.Logger
	// Retention is only the default before a retention rule is committed
	// (SetRetention; the node commits the policy's): the first Prune on a
	// ledger without a rule commits it as the rule. Apply checks every
	// prune against the rule, or DefaultRetention while there is none.
	// Zero: DefaultRetention.
	Retention time.Duration
	// CheckpointInterval is how often the leader signs a checkpoint while
	// entries arrive. Zero: DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// EncryptionKey, when set (16, 24 or 32 bytes), encrypts the badger
	// database at rest. Nil: no encryption. A directory must always be
	// opened with the key it was created with.
	EncryptionKey []byte
	// Erasable makes Compact erase from this replica's files every
	// record deleted or overwritten before it (docs/ledger.md, "Erasure"):
	// the badger databases get memory tables of erasableMemTable bytes,
	// level 0 compacted from two tables, and value-log files of few
	// values, so that Compact can move the value log to a new file and
	// rewrite the one that holds the garbage. The node sets it on its data
	// group (holdings). False: Compact still keeps one snapshot, cuts the
	// log, flushes, flattens and collects every value-log file but the one
	// being written.
	Erasable bool
	// Now is the clock: the leader stamps commands with it, and answers
	// other leaders' pings with it (a leader more than five minutes ahead
	// of a majority does not write). Nil: time.Now. Tests inject one.
	Now func() time.Time

	// tune adjusts Raft's configuration (tests: short timeouts, frequent
	// snapshots). Nil: none.
	tune func(*raft.Config)
}

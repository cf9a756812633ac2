package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/note"

	"github.com/xborder/xborder/internal/slogadapter"
	"github.com/xborder/xborder/ledger/raftbadger"
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
	// Retention is how long entry bodies are kept before Prune may delete
	// them. Zero: DefaultRetention.
	Retention time.Duration
	// CheckpointInterval is how often the leader signs a checkpoint while
	// entries arrive. Zero: DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// EncryptionKey, when set (16, 24 or 32 bytes), encrypts the badger
	// database at rest. Nil: no encryption. A directory must always be
	// opened with the key it was created with.
	EncryptionKey []byte
	// Now is the clock. Nil: time.Now. Tests inject one.
	Now func() time.Time

	// tune adjusts Raft's configuration (tests: short timeouts, frequent
	// snapshots). Nil: none.
	tune func(*raft.Config)
}

// Ledger is one replica of an agency's audit ledger. Its methods are safe
// for concurrent use. Open starts Raft and a checkpoint goroutine; Close
// stops both.
type Ledger struct {
	cfg    Config
	origin string
	log    *slog.Logger
	db     *badger.DB // replicated state (s/) and this replica's own keys (x/)
	raftDB *badger.DB // Raft log and stable store
	fsm    *fsm
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	demux  *demux      // splits cfg.Transport into Raft and forwarding
	signer note.Signer // nil without a key
	verKey string      // note verifier key, "" until the public key is known

	sigMu sync.Mutex // serialises checkpoint signing

	stop chan struct{}
	done chan struct{}
	once sync.Once

	fwdMu     sync.Mutex
	fwdClosed bool
	fwdConns  map[net.Conn]struct{} // forwarding connections served
	pool      map[string][]net.Conn // idle forwarding connections to leaders
	fwdWG     sync.WaitGroup        // forwarding server goroutines

	writers      atomic.Int64 // estimate of callers writing (batch.go)
	inflightCmds atomic.Int64 // commands in the batches in Raft
	// Status counters.
	batches, batchedCmds       atomic.Uint64
	stateSyncs, stateSyncNanos atomic.Uint64
	fwdDials                   atomic.Uint64
	batchQ                     chan *pending  // commands waiting for group commit (batch.go)
	batchDone                  chan struct{}  // closed when batchLoop ends
	batchWG                    sync.WaitGroup // batches in Raft
	raftDown                   chan struct{}  // closed once Raft has shut down
}

// Origin returns the checkpoint origin for an agency code.
func Origin(agency string) string { return "xborder.ledger/" + agency }

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

// Open opens (or creates) the ledger in cfg.Dir, checks the stored tree
// against the entries (ErrCorrupt when they disagree) and starts Raft.
func Open(ctx context.Context, cfg Config) (*Ledger, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("open ledger: no directory: %w", ErrInvalid)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "ledger")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", cfg.Dir, err)
	}
	opts := dbOptions(cfg.Dir, cfg.EncryptionKey, badgerLogger{log})
	// The Raft log has a database of its own, so that its synced writes and
	// the state machine's go to the disk side by side rather than in turn.
	// Its entries (group-commit batches of up to maxBatchBytes) stay in the
	// LSM: in the value log each synced write would sync two files.
	raftDB, err := badger.Open(opts.WithDir(filepath.Join(cfg.Dir, "raft")).WithValueDir(filepath.Join(cfg.Dir, "raft")).WithValueThreshold(1 << 20))
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", cfg.Dir, err)
	}
	// Snapshots and checkpoints sync the state first (fsm.Snapshot,
	// signCheckpoint, markVerified).
	db, err := badger.Open(stateOptions(opts))
	if err != nil {
		raftDB.Close()
		return nil, fmt.Errorf("open ledger %s: %w", cfg.Dir, err)
	}
	l := &Ledger{cfg: cfg, log: log, db: db, raftDB: raftDB, stop: make(chan struct{}), done: make(chan struct{}),
		fwdConns: map[net.Conn]struct{}{}, batchQ: make(chan *pending, 4*maxBatch), batchDone: make(chan struct{}), raftDown: make(chan struct{})}
	if err := l.open(ctx); err != nil {
		close(l.stop)
		if l.raft != nil {
			l.raft.Shutdown().Error()
		}
		close(l.raftDown)
		if l.trans != nil {
			l.trans.Close()
		} else if l.demux != nil {
			l.demux.Close()
		}
		l.closeForward()
		l.fwdWG.Wait()
		db.Close()
		raftDB.Close()
		return nil, err
	}
	go l.checkpointLoop()
	go l.batchLoop()
	return l, nil
}

func (l *Ledger) open(ctx context.Context) error {
	if err := l.identity(); err != nil {
		return err
	}
	if err := l.syncState(); err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	f, err := newFSM(l.db, l.log)
	if err != nil {
		return err
	}
	l.fsm = f
	if err := l.check(ctx); err != nil {
		return err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(l.cfg.ReplicaID)
	rc.Logger = slogadapter.New(l.log.With("component", "raft"))
	rc.NoSnapshotRestoreOnStart = true
	rc.BatchApplyCh = true
	// A snapshot streams the whole state and serves only log compaction and
	// catching up a new replica (the state on disk is always current), so
	// take one rarely.
	rc.SnapshotThreshold = 100_000
	// Replicate up to 256 commands per AppendEntries RPC (group commit:
	// the leader writes them to its log in one synced batch and followers
	// likewise).
	rc.MaxAppendEntries = 256
	if l.cfg.Transport == nil {
		// Alone on loopback: nothing to wait for but ourselves.
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
	}
	if l.cfg.tune != nil {
		l.cfg.tune(rc)
	}
	store := raftbadger.New(l.raftDB, prefixRaft)
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(l.cfg.Dir, "snapshots"), 2, rc.Logger)
	if err != nil {
		return fmt.Errorf("open ledger snapshots: %w", err)
	}
	stream := l.cfg.Transport
	if stream == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("open ledger transport: %w", err)
		}
		stream = &tcpLayer{ln: ln}
	}
	l.demux = newDemux(stream)
	l.fwdWG.Add(1)
	go l.serveForward()
	l.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{l.demux}, MaxPool: 3, Timeout: 10 * time.Second, Logger: rc.Logger,
	})
	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	if !existing && l.cfg.Bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: l.trans.LocalAddr(),
		}}}
		if err := raft.BootstrapCluster(rc, logs, store, snaps, l.trans, cfg); err != nil {
			return fmt.Errorf("bootstrap ledger: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, f, logs, store, snaps, l.trans)
	if err != nil {
		return fmt.Errorf("start ledger raft: %w", err)
	}
	l.raft = r
	if l.cfg.Transport == nil {
		// A lone replica elects itself at once: wait for that, and for its
		// own log to be applied, so that it is ready when Open returns.
		return l.barrier(ctx)
	}
	return nil
}

// barrier waits until this replica leads and has applied its whole log.
func (l *Ledger) barrier(ctx context.Context) error {
	deadline := time.Now().Add(DefaultWriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		if l.raft.State() == raft.Leader {
			if err := l.raft.Barrier(time.Until(deadline)).Error(); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("open ledger: no leader within the wait: %w", ErrNoQuorum)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("open ledger: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// identity records the agency, replica ID and public key in a new
// directory, and checks them against an existing one.
func (l *Ledger) identity() error {
	var pub ed25519.PublicKey
	if l.cfg.Signer != nil {
		if len(l.cfg.Signer) != ed25519.PrivateKeySize {
			return fmt.Errorf("open ledger: signer key of %d bytes: %w", len(l.cfg.Signer), ErrInvalid)
		}
		pub = l.cfg.Signer.Public().(ed25519.PublicKey)
	}
	return l.db.Update(func(txn *badger.Txn) error {
		for _, f := range []struct {
			key  string
			val  *string
			name string
		}{
			{keyAgency, &l.cfg.Agency, "agency"},
			{keyReplica, &l.cfg.ReplicaID, "replica ID"},
		} {
			stored, ok, err := getBytes(txn, []byte(f.key))
			if err != nil {
				return fmt.Errorf("open ledger: %w", err)
			}
			switch {
			case ok && *f.val == "":
				*f.val = string(stored)
			case ok && string(stored) != *f.val:
				return fmt.Errorf("open ledger: %s %q, but the directory belongs to %q: %w", f.name, *f.val, stored, ErrInvalid)
			case !ok && *f.val == "":
				return fmt.Errorf("open ledger: a new directory needs the %s: %w", f.name, ErrInvalid)
			case !ok:
				if err := checkField(*f.val); err != nil {
					return err
				}
				if err := txn.Set([]byte(f.key), []byte(*f.val)); err != nil {
					return fmt.Errorf("open ledger: %w", err)
				}
			}
		}
		l.origin = Origin(l.cfg.Agency)
		stored, ok, err := getBytes(txn, []byte(keyPublic))
		if err != nil {
			return fmt.Errorf("open ledger: %w", err)
		}
		if ok && pub != nil && !bytes.Equal(stored, pub) {
			return fmt.Errorf("open ledger: the signing key is not the agency key this ledger was created with: %w", ErrInvalid)
		}
		if !ok && pub != nil {
			if err := txn.Set([]byte(keyPublic), pub); err != nil {
				return fmt.Errorf("open ledger: %w", err)
			}
			stored = pub
		}
		if len(stored) == ed25519.PublicKeySize {
			if l.verKey, err = VerifierKey(l.origin, stored); err != nil {
				return err
			}
		}
		if l.cfg.Signer != nil {
			if l.signer, err = noteSigner(l.origin, l.cfg.Signer); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close stops the checkpoint goroutine and Raft (after a last checkpoint)
// and closes the database.
func (l *Ledger) Close() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		<-l.batchDone
		// A replica without the agency key (the node's data group) signs no
		// checkpoints, so it has no last one to sign either.
		if l.signer != nil && l.raft.State() == raft.Leader {
			if _, e := l.signCheckpoint(); e != nil {
				l.log.Warn("last checkpoint", "err", e)
			}
		}
		err = l.raft.Shutdown().Error()
		close(l.raftDown)
		l.batchWG.Wait()
		if e := l.trans.Close(); err == nil {
			err = e
		}
		l.closeForward()
		l.fwdWG.Wait()
		if e := l.raftDB.Close(); err == nil {
			err = e
		}
		if e := l.db.Close(); err == nil {
			err = e
		}
		if err != nil {
			err = fmt.Errorf("close ledger: %w", err)
		}
	})
	return err
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

// Reservation asks Admit to reserve Amount of the budget under Key, whose
// cap is Limit. Keys are opaque; each "DAY" path segment is replaced by
// the leader's UTC day (YYYY-MM-DD).
type Reservation struct {
	Key    string `json:"key"`
	Amount uint64 `json:"amount"`
	Limit  uint64 `json:"limit"`
}

// Admission is an inbound request to admit atomically.
type Admission struct {
	// Entry is appended when the request is admitted (usually TypeMatchIn
	// with OutcomeOK); RequestID is required.
	Entry Entry
	// PolicyVersion is the version the decision was made on; it must be
	// the version in force (that of the last policy entry; "" before any).
	PolicyVersion string
	// Reserve lists the budgets to reserve.
	Reserve []Reservation
	// ReplayWindow is how long a request ID stays spent. Zero:
	// DefaultReplayWindow.
	ReplayWindow time.Duration
}

// Admit checks the request ID against the replay window, the policy version
// in force, and reserves every budget, then appends a.Entry: all in one
// command. When it cannot, it appends a denial entry (same header, Type
// TypeDenial, an Outcome that says why) and returns its receipt with
// ErrReplay, ErrStalePolicy or ErrBudget. ErrNoQuorum means nothing is
// known: retry with the same command ID or look it up with Outcome.
func (l *Ledger) Admit(ctx context.Context, a Admission) (Receipt, error) {
	if err := l.prepare(&a.Entry); err != nil {
		return Receipt{}, fmt.Errorf("admit request: %w", err)
	}
	if a.Entry.RequestID == "" {
		return Receipt{}, fmt.Errorf("admit request: no request ID: %w", ErrInvalid)
	}
	for _, r := range a.Reserve {
		if err := checkField(r.Key); err != nil {
			return Receipt{}, fmt.Errorf("admit request: budget key: %w", err)
		}
	}
	if a.ReplayWindow == 0 {
		a.ReplayWindow = DefaultReplayWindow
	}
	c := &command{Op: opAdmit, Entry: &a.Entry, PolicyVersion: a.PolicyVersion, Reserve: a.Reserve, ReplayWindow: int64(a.ReplayWindow)}
	o, err := l.submit(ctx, c)
	if err != nil && !o.Appended {
		return Receipt{}, fmt.Errorf("admit request: %w", err)
	}
	if err != nil {
		return o.receipt(c.ID), fmt.Errorf("admit request %s: %w", a.Entry.RequestID, err)
	}
	return o.receipt(c.ID), nil
}

// Outcome looks up the command with the given ID on this replica's state,
// for a caller whose call failed ambiguously: it returns the command's
// receipt and the error the command ended with (nil, ErrBudget, ErrReplay,
// …), or ErrNotFound when this replica has not applied such a command.
func (l *Ledger) Outcome(id string) (Receipt, error) {
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

// Put stores value under (ns, key) in the replicated records: not audit
// entries, not in the tree, carried by snapshots.
func (l *Ledger) Put(ctx context.Context, ns, key string, value []byte) (Receipt, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return Receipt{}, fmt.Errorf("put record: %w", err)
	}
	c := &command{Op: opPut, NS: ns, Key: key, Value: value}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("put record: %w", err)
	}
	return o.receipt(c.ID), nil
}

// Delete removes the record (ns, key); deleting a missing record is not an error.
func (l *Ledger) Delete(ctx context.Context, ns, key string) (Receipt, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return Receipt{}, fmt.Errorf("delete record: %w", err)
	}
	c := &command{Op: opDelete, NS: ns, Key: key}
	o, err := l.submit(ctx, c)
	if err != nil {
		return Receipt{}, fmt.Errorf("delete record: %w", err)
	}
	return o.receipt(c.ID), nil
}

// Get returns the record (ns, key) as this replica has applied it, or
// ErrNotFound.
func (l *Ledger) Get(ns, key string) ([]byte, error) {
	if err := checkRecordKey(ns, key); err != nil {
		return nil, fmt.Errorf("get record: %w", err)
	}
	var v []byte
	err := l.db.View(func(txn *badger.Txn) error {
		b, ok, err := getBytes(txn, recordKey(ns, key))
		if !ok && err == nil {
			return ErrNotFound
		}
		v = b
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get record %s/%s: %w", ns, key, err)
	}
	return v, nil
}

// Scan calls fn for every record of ns whose key starts with prefix, in key
// order, until fn returns an error (which Scan returns).
func (l *Ledger) Scan(ns, prefix string, fn func(key string, value []byte) error) error {
	if err := checkRecordKey(ns, prefix); err != nil {
		return fmt.Errorf("scan records: %w", err)
	}
	base := recordKey(ns, "")
	return l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordKey(ns, prefix), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("scan records: %w", err)
			}
			if err := fn(string(it.Item().Key()[len(base):]), v); err != nil {
				return err
			}
		}
		return nil
	})
}

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
	}
}

// tcpLayer is the plain TCP StreamLayer of a lone replica.
type tcpLayer struct{ ln net.Listener }

func (t *tcpLayer) Accept() (net.Conn, error) { return t.ln.Accept() }
func (t *tcpLayer) Close() error              { return t.ln.Close() }
func (t *tcpLayer) Addr() net.Addr            { return t.ln.Addr() }
func (t *tcpLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}

// badgerLogger sends badger's logs to slog; badger's info chatter goes to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}

// dbOptions are the options of the Raft log database of a ledger in dir,
// synced on every write; stateOptions derives the state database's.
func dbOptions(dir string, key []byte, log badger.Logger) badger.Options {
	opts := badger.DefaultOptions(filepath.Join(dir, "state")).
		WithSyncWrites(true).
		WithLogger(log).
		WithNumVersionsToKeep(1).
		WithMemTableSize(16 << 20).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(128 << 20).
		WithBlockCacheSize(16 << 20).
		WithNumCompactors(2)
	if len(key) > 0 {
		opts = opts.WithEncryptionKey(key).WithIndexCacheSize(16 << 20)
	}
	return opts
}

// stateOptions: the state needs no fsync per write (the Raft log is
// synced, and replaying it is idempotent); only the state machine writes
// replicated keys, one transaction at a time, so conflict detection is
// off; values of 1 KiB or more (entry bodies, batches of holdings) go to
// the value log once rather than through every LSM compaction.
func stateOptions(opts badger.Options) badger.Options {
	return opts.WithSyncWrites(false).WithDetectConflicts(false).WithValueThreshold(1 << 10)
}

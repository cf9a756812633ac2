package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
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

	"github.com/xborder/xborder/ledger/internal/hclogslog"
	"github.com/xborder/xborder/ledger/raftbadger"
)

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
	trans  *guard      // Raft's transport: RPCs only from members (guard.go)
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
	refusedConns, refusedRPCs  atomic.Uint64  // rules.go, guard.go
	clk                        clocks         // the voters' clocks (clock.go)
	batchQ                     chan *pending  // commands waiting for group commit (batch.go)
	batchDone                  chan struct{}  // closed when batchLoop ends
	batchWG                    sync.WaitGroup // batches in Raft
	raftDown                   chan struct{}  // closed once Raft has shut down
	stepDone                   chan struct{}  // closed when stepDown ends
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
	raftOpts := opts.WithDir(filepath.Join(cfg.Dir, "raft")).WithValueDir(filepath.Join(cfg.Dir, "raft")).WithValueThreshold(1 << 20)
	stOpts := stateOptions(opts)
	if cfg.Erasable {
		raftOpts, stOpts = erasable(raftOpts, erasableRaftVlogEntries), erasable(stOpts, erasableVlogEntries)
	}
	raftDB, err := OpenBadger(raftOpts)
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", cfg.Dir, err)
	}
	// Snapshots and checkpoints sync the state first (fsm.Snapshot,
	// signCheckpoint, markVerified).
	db, err := OpenBadger(stOpts)
	if err != nil {
		raftDB.Close()
		return nil, fmt.Errorf("open ledger %s: %w", cfg.Dir, err)
	}
	l := &Ledger{cfg: cfg, log: log, db: db, raftDB: raftDB, stop: make(chan struct{}), done: make(chan struct{}),
		fwdConns: map[net.Conn]struct{}{}, batchQ: make(chan *pending, 4*maxBatch), batchDone: make(chan struct{}), raftDown: make(chan struct{}), stepDone: make(chan struct{}),
		clk: clocks{kick: make(chan struct{}, 1)}}
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
	l.fwdWG.Add(1)
	go l.clockLoop()
	go l.batchLoop()
	go l.stepDown()
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

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(l.cfg.ReplicaID)
	rc.Logger = hclogslog.New(l.log.With("component", "raft"))
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
	store := logStore{Store: raftbadger.New(l.raftDB, prefixRaft), gate: &l.fsm.gate}
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	files, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(l.cfg.Dir, "snapshots"), 2, rc.Logger)
	if err != nil {
		return fmt.Errorf("open ledger snapshots: %w", err)
	}
	snaps := &snapStore{SnapshotStore: files, key: l.cfg.EncryptionKey}
	// A state behind the latest snapshot, or cut short in a restore, is
	// restored from that snapshot before anything reads it (recover.go).
	if err := l.recoverState(snaps, store); err != nil {
		return err
	}
	if err := l.check(ctx); err != nil {
		return err
	}
	stream := l.cfg.Transport
	if stream == nil {
		tl, err := listenTCP()
		if err != nil {
			return fmt.Errorf("open ledger transport: %w", err)
		}
		stream = tl
	}
	l.demux = newDemux(stream)
	l.trans = newGuard(l, rc.Logger)
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
	r, err := raft.NewRaft(rc, raftFSM{f, snaps}, logs, store, snaps, l.trans)
	if err != nil {
		return fmt.Errorf("start ledger raft: %w", err)
	}
	l.raft = r
	// Forwarded requests are served only now: a replica that restarts
	// while its peers ping it would otherwise answer one with no Raft to
	// ask (a nil dereference that testnet chaos met). They wait in the
	// demux meanwhile.
	l.fwdWG.Add(1)
	go l.serveForward()
	l.trans.start()
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
		<-l.stepDone
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

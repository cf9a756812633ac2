package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// LoadKey reads an agency's Ed25519 private key from a PEM file holding a
// "PRIVATE KEY" block (PKCS #8), as `--key FILE` names it.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load agency key: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("load agency key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses a PEM "PRIVATE KEY" block (PKCS #8) holding an Ed25519 key.
func ParseKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("parse agency key: no PEM \"PRIVATE KEY\" block: %w", ErrInvalid)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse agency key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse agency key: a %T, want Ed25519: %w", k, ErrInvalid)
	}
	return ek, nil
}

// MarshalKey encodes k as a PEM "PRIVATE KEY" block (PKCS #8), the format
// LoadKey reads.
func MarshalKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal agency key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// VerifierKey returns the signed-note verifier key (name+hash+base64) of an
// agency public key, named by the ledger origin.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	v, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return "", fmt.Errorf("verifier key for %s: %w", origin, err)
	}
	return v, nil
}

// noteSigner returns a signed-note signer for the agency key.
func noteSigner(origin string, k ed25519.PrivateKey) (note.Signer, error) {
	pub := append([]byte{1}, k.Public().(ed25519.PublicKey)...) // 1: Ed25519 in x/mod/sumdb/note
	h := sha256.Sum256(append([]byte(origin+"\n"), pub...))
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", origin, binary.BigEndian.Uint32(h[:4]),
		base64.StdEncoding.EncodeToString(append([]byte{1}, k.Seed()...)))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint signer for %s: %w", origin, err)
	}
	return s, nil
}

// Checkpoint is a signed C2SP tlog-checkpoint of the ledger.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
	Note   []byte // the signed note, as served and exported
}

// ParseCheckpoint checks the signature of a signed checkpoint note with the
// verifier key and parses it.
func ParseCheckpoint(signed []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	if c.Origin != v.Name() || len(c.Hash) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: origin %q signed by %q", c.Origin, v.Name())
	}
	cp := Checkpoint{Origin: c.Origin, Size: c.Size, Note: signed}
	copy(cp.Root[:], c.Hash)
	return cp, nil
}

// VerifierKey returns this ledger's note verifier key, or "" when the
// agency key was never given to this directory.
func (l *Ledger) VerifierKey() string { return l.verKey }

// treeHead reads a consistent size and root.
func treeHead(txn *badger.Txn) (uint64, tlog.Hash, error) {
	n, err := getUint64(txn, keySize)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	root, err := tlog.TreeHash(int64(n), hashReader{txn})
	return n, root, err
}

// signCheckpoint signs the current tree head and stores it.
func (l *Ledger) signCheckpoint() (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: no agency key: %w", ErrInvalid)
	}
	l.sigMu.Lock()
	defer l.sigMu.Unlock()
	var n uint64
	var root tlog.Hash
	if err := l.db.View(func(txn *badger.Txn) (err error) {
		n, root, err = treeHead(txn)
		return err
	}); err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	// The state this checkpoint covers must be durable before the
	// checkpoint is (state commits are not synced one by one).
	if err := l.syncState(); err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	text := log.Checkpoint{Origin: l.origin, Size: n, Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, l.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	err = l.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keyNote), signed); err != nil {
			return err
		}
		return txn.Set([]byte(keyVerified), append(u64(n), root[:]...))
	})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w", err)
	}
	return Checkpoint{Origin: l.origin, Size: n, Root: root, Note: signed}, nil
}

// markVerified records the tree head this replica built, for the start check.
func (l *Ledger) markVerified() error {
	if err := l.syncState(); err != nil {
		return err
	}
	return l.db.Update(func(txn *badger.Txn) error {
		n, root, err := treeHead(txn)
		if err != nil {
			return err
		}
		return txn.Set([]byte(keyVerified), append(u64(n), root[:]...))
	})
}

// Checkpoint returns the latest signed checkpoint, signing one first when
// this replica holds the key and the tree grew since.
func (l *Ledger) Checkpoint() (Checkpoint, error) {
	if l.signer != nil && l.raft.State() == raft.Leader {
		var stored []byte
		if err := l.db.View(func(txn *badger.Txn) (err error) {
			stored, _, err = getBytes(txn, []byte(keyNote))
			return err
		}); err != nil {
			return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
		}
		if stored != nil {
			if cp, err := ParseCheckpoint(stored, l.verKey); err == nil && cp.Size == l.fsm.meta().size {
				return cp, nil
			}
		}
		return l.signCheckpoint()
	}
	var stored []byte
	if err := l.db.View(func(txn *badger.Txn) (err error) {
		stored, _, err = getBytes(txn, []byte(keyNote))
		return err
	}); err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	if stored == nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint: none signed yet: %w", ErrNotFound)
	}
	return ParseCheckpoint(stored, l.verKey)
}

// checkpointLoop signs a checkpoint every interval while the tree grows (on
// the leader) and records the tree head (everywhere); in between, while the
// state changes, it starts its writeback every writebackInterval and syncs
// it every stateSyncInterval (statesync.go). It ends when Close closes
// l.stop.
func (l *Ledger) checkpointLoop() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.CheckpointInterval)
	defer t.Stop()
	st := time.NewTicker(stateSyncInterval)
	defer st.Stop()
	wb := time.NewTicker(writebackInterval)
	defer wb.Stop()
	last := ^uint64(0)
	synced := l.fsm.meta().applied
	written := synced
	for {
		select {
		case <-l.stop:
			return
		case <-wb.C:
			written = l.ifApplied(written, l.writeback, "write back ledger state")
			continue
		case <-st.C:
			synced = l.ifApplied(synced, l.syncState, "sync ledger state")
			continue
		case <-t.C:
		}
		size := l.fsm.meta().size
		if size == last || l.fsm.halted() != nil {
			continue
		}
		var err error
		if l.signer != nil && l.raft.State() == raft.Leader {
			_, err = l.signCheckpoint()
		} else {
			err = l.markVerified()
		}
		if err != nil {
			l.log.Warn("checkpoint", "err", err)
			continue
		}
		last = size
	}
}

// ifApplied runs do if the state machine applied anything past mark and is
// healthy, and returns the applied index it covered (mark again if do
// failed, so that the next tick tries again).
func (l *Ledger) ifApplied(mark uint64, do func() error, what string) uint64 {
	a := l.fsm.meta().applied
	if a == mark || l.fsm.halted() != nil {
		return mark
	}
	if err := do(); err != nil {
		l.log.Warn(what, "err", err)
		return mark
	}
	return a
}

// corrupt builds the start check's error.
func corrupt(i uint64, format string, args ...any) error {
	return fmt.Errorf("check ledger at index %d: %s: %w; restore this replica's directory from a backup or re-join it from a healthy replica",
		i, fmt.Sprintf(format, args...), ErrCorrupt)
}

// check verifies the stored ledger before Raft starts: every leaf decodes,
// carries its index, hashes to the stored leaf hash and matches its body;
// the stored tree reproduces the last signed checkpoint and the last tree
// head this replica recorded; and the tree hashes of entries added since
// that head are rebuilt from the leaves and compared.
func (l *Ledger) check(ctx context.Context) error {
	size := l.fsm.meta().size
	return l.db.View(func(txn *badger.Txn) error {
		var from uint64
		ver, ok, err := getBytes(txn, []byte(keyVerified))
		if err != nil {
			return fmt.Errorf("check ledger: %w", err)
		}
		heads := map[uint64]tlog.Hash{}
		if ok {
			if len(ver) != 8+tlog.HashSize {
				return corrupt(0, "tree head record of %d bytes", len(ver))
			}
			from = binary.BigEndian.Uint64(ver)
			heads[from] = tlog.Hash(ver[8:])
		}
		if signed, ok, err := getBytes(txn, []byte(keyNote)); err != nil {
			return fmt.Errorf("check ledger: %w", err)
		} else if ok && l.verKey != "" {
			cp, err := ParseCheckpoint(signed, l.verKey)
			if err != nil {
				return corrupt(0, "stored checkpoint: %v", err)
			}
			if r, seen := heads[cp.Size]; seen && r != cp.Root {
				return corrupt(cp.Size, "signed checkpoint and recorded tree head disagree")
			}
			heads[cp.Size] = cp.Root
		}
		for n, want := range heads {
			if n > size {
				return corrupt(size, "%d entries, but a checkpoint covers %d", size, n)
			}
			got, err := tlog.TreeHash(int64(n), hashReader{txn})
			if err != nil {
				return corrupt(n, "tree hash: %v", err)
			}
			if got != want {
				return corrupt(n, "the stored tree at size %d does not reproduce its checkpoint root", n)
			}
		}
		return checkRecords(ctx, txn, size, from)
	})
}

// checkRecords checks the records of entries 0 to size-1 (checkStored),
// rebuilding the tree hashes of those from index from on.
func checkRecords(ctx context.Context, txn *badger.Txn, size, from uint64) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxEntry), PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	i := uint64(0)
	for it.Rewind(); it.Valid(); it.Next() {
		if i%4096 == 0 && ctx.Err() != nil {
			return fmt.Errorf("check ledger: %w", ctx.Err())
		}
		if got := binary.BigEndian.Uint64(it.Item().Key()[len(pfxEntry):]); got != i {
			return corrupt(i, "entry missing (next stored entry is %d)", got)
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("check ledger: %w", err)
		}
		r, err := parseRecord(i, v)
		if err != nil {
			return err
		}
		if err := checkStored(txn, i, r, i >= from); err != nil {
			return err
		}
		i++
	}
	if i != size {
		return corrupt(i, "%d entries stored, state says %d", i, size)
	}
	return nil
}

// checkStored checks the record r of entry i: its leaf against its leaf
// hash and its body, and when rebuild is set, every tree hash that adding
// the leaf produced, rebuilt from the stored tree.
func checkStored(txn *badger.Txn, i uint64, r record, rebuild bool) error {
	h, err := DecodeLeaf(r.leaf)
	if err != nil {
		return corrupt(i, "%v", err)
	}
	if h.Index != i {
		return corrupt(i, "leaf carries index %d", h.Index)
	}
	if tlog.RecordHash(r.leaf) != r.hash(0) {
		return corrupt(i, "leaf does not match its hash in the tree")
	}
	if len(r.body) > 0 {
		b, err := decodeBody(r.body[32:])
		if err != nil {
			return corrupt(i, "body: %v", err)
		}
		if BodyHash(Digest(r.body[:32]), b) != h.BodyHash {
			return corrupt(i, "body does not match the body hash in its leaf")
		}
	}
	if rebuild {
		want, err := tlog.StoredHashes(int64(i), r.leaf, hashReader{txn})
		if err != nil {
			return corrupt(i, "rebuild tree: %v", err)
		}
		for k, w := range want {
			if r.hash(k) != w {
				return corrupt(i, "tree hash %d does not match the leaves", tlog.StoredHashIndex(0, int64(i))+int64(k))
			}
		}
	}
	return nil
}

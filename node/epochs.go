package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// nsEpochs is the audit group's record of the OPRF epochs: key "state"
// (epochState JSON) and "keys/<epoch %020d>" (signedKeys JSON).
const nsEpochs = "epochs"

// epochKeysContext is the signing context of an epoch's public keys.
const epochKeysContext = "xborder/v1/epoch-keys\x00"

// epochState says which epoch answers queries and which is being
// prepared. With no record, epoch 1 (the seed of init) is current.
type epochState struct {
	Current uint64 `json:"current"`
	Next    uint64 `json:"next,omitempty"` // 0: no rotation in progress
}

// live returns the epochs whose sets this replica keeps.
func (s epochState) live() []uint64 {
	if s.Next != 0 {
		return []uint64{s.Current, s.Next}
	}
	return []uint64{s.Current}
}

func (n *Node) epochState() epochState {
	st := epochState{Current: 1}
	if b, err := n.aud.Get(nsEpochs, "state"); err == nil {
		if err := json.Unmarshal(b, &st); err != nil || st.Current == 0 {
			n.log.Error("epoch record does not decode", "err", err)
			return epochState{Current: 1}
		}
	}
	return st
}

// seedRecord is the seed of the oldest live epoch, kept in the local store;
// later seeds are ratcheted from it (psi.Seed.Next), never replicated.
type seedRecord struct {
	Epoch uint64 `json:"epoch"`
	Seed  string `json:"seed"` // hex
}

// seed returns the seed of epoch e, ratcheting from the oldest live seed.
func (n *Node) seed(e uint64) (psi.Seed, error) {
	n.epochMu.Lock()
	defer n.epochMu.Unlock()
	if n.sets.db == nil {
		return psi.Seed{}, errors.New("epoch seed: the local store is not open yet")
	}
	if n.seedBase == nil {
		rec := &seedRecord{}
		err := n.sets.db.View(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte("x/seed"))
			if err != nil {
				return err
			}
			return it.Value(func(v []byte) error { return json.Unmarshal(v, rec) })
		})
		if errors.Is(err, badger.ErrKeyNotFound) {
			// The seed file holds the seed of the epoch current when it was
			// written: init's epoch 1, or the epoch a retirement moved to.
			b, ferr := readHexSecret(n.path(EpochSeedFile), psi.SeedSize)
			if ferr != nil {
				return psi.Seed{}, fmt.Errorf("epoch seed: %w", ferr)
			}
			rec = &seedRecord{Epoch: n.epochState().Current, Seed: hex.EncodeToString(b)}
		} else if err != nil {
			return psi.Seed{}, fmt.Errorf("epoch seed: %w", err)
		}
		n.seedBase = rec
	}
	if e < n.seedBase.Epoch {
		return psi.Seed{}, fmt.Errorf("seed of epoch %d was erased when it retired: %w", e, errNoEpoch)
	}
	var s psi.Seed
	b, err := hex.DecodeString(n.seedBase.Seed)
	if err != nil || len(b) != psi.SeedSize {
		return psi.Seed{}, errors.New("epoch seed: stored seed does not decode")
	}
	copy(s[:], b)
	for i := n.seedBase.Epoch; i < e; i++ {
		s = s.Next()
	}
	return s, nil
}

// errNoEpoch marks a missing epoch (no key, no set).
var errNoEpoch = errors.New("no such epoch")

// epochKeys derives the public keys of every kind at epoch e.
func (n *Node) epochKeys(e uint64) ([]card.EpochKey, error) {
	seed, err := n.seed(e)
	if err != nil {
		return nil, err
	}
	var out []card.EpochKey
	for _, k := range ident.Kinds() {
		r, err := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: n.fc.Agency, Kind: k.String(), Epoch: e, Workers: 1})
		if err != nil {
			return nil, err
		}
		kb, err := r.PublicKey().MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = append(out, card.EpochKey{Epoch: e, Kind: k.String(), Key: kb})
	}
	return out, nil
}

// cardEpochKeys returns the keys of the live epochs for the agency card.
func (n *Node) cardEpochKeys() []card.EpochKey {
	var out []card.EpochKey
	for _, e := range n.epochState().live() {
		ks, err := n.epochKeys(e)
		if err != nil {
			n.log.Warn("epoch keys for the card", "epoch", e, "err", err)
			continue
		}
		out = append(out, ks...)
	}
	return out
}

// signedKeys is an epoch's public keys signed by the agency key, as the
// audit group records them.
type signedKeys struct {
	Epoch     uint64          `json:"epoch"`
	Keys      []card.EpochKey `json:"keys"`
	Signature []byte          `json:"signature"` // Ed25519 over epochKeysContext ‖ JSON of Keys
}

// RotateKeys commits a new epoch: its public keys, signed by the agency
// key, go into the audit group (an epoch entry and a record) and into the
// card; every kind held gets a base set of the new epoch, built in the
// background by every replica; the current epoch keeps answering until
// the new one's sets are ready (finishEpoch).
func (n *Node) RotateKeys(ctx context.Context, u httpapi.User) (httpapi.Rotation, error) {
	st := n.epochState()
	if st.Next != 0 {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: epoch %d is still being prepared; wait until it answers: %w", st.Next, httpapi.ErrConflict)
	}
	next := st.Current + 1
	keys, err := n.epochKeys(next)
	if err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	kb, _ := json.Marshal(keys)
	rec, _ := json.Marshal(signedKeys{Epoch: next, Keys: keys,
		Signature: ed25519.Sign(n.key, append([]byte(epochKeysContext), kb...))})
	// Base sets of the new epoch: every batch held, per kind: stored and
	// referenced by a manifest (an import's batches are held once it is
	// committed; orphans of abandoned imports are not).
	held, err := n.referenced("")
	if err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	byKind := map[string][]string{}
	if err := n.data.Scan(nsRows, "", func(key string, _ []byte) error {
		if _, ok := held[key]; !ok {
			return nil
		}
		kind, _, _ := strings.Cut(key, "/")
		byKind[kind] = append(byKind[kind], key)
		return nil
	}); err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	for kind, batches := range byKind {
		if _, err := n.addVersion(ctx, kind, next, batches); err != nil {
			return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
		}
	}
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeEpoch, Epoch: next,
			Outcome: ledger.OutcomeOK, Count: uint64(len(keys)), Digest: sha256.Sum256(rec), Replica: n.fc.ReplicaID()},
			Body: ledger.Body{Actor: actorName(u), Purpose: "epoch start"}})
	}); err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	if _, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) {
		return n.aud.Put(ctx, nsEpochs, fmt.Sprintf("keys/%020d", next), rec)
	}); err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	nst, _ := json.Marshal(epochState{Current: st.Current, Next: next})
	if _, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) {
		return n.aud.Put(ctx, nsEpochs, "state", nst)
	}); err != nil {
		return httpapi.Rotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	n.log.Info("epoch rotation started", "epoch", st.Current, "next", next)
	n.kickBuild()
	return httpapi.Rotation{Epoch: st.Current, NextEpoch: next}, nil
}

// epochReady reports whether this replica has built and recorded every
// set version of epoch e.
func (n *Node) epochReady(e uint64) bool {
	for _, k := range ident.Kinds() {
		m, err := n.manifest(k.String(), e)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		ls := n.sets.get(k.String(), e)
		if err != nil || ls == nil {
			return false
		}
		ls.mu.Lock()
		ready := ls.built >= len(m.Versions) && ls.recorded == len(ls.segments) && !ls.bad
		ls.mu.Unlock()
		if !ready {
			return false
		}
	}
	return true
}

// finishEpoch (on the audit leader, once its sets of st.Next are ready)
// commits the new epoch as current and the old one as retired.
func (n *Node) finishEpoch(st epochState) error {
	ctx, cancel := context.WithTimeout(ledger.WithCommandID(context.Background(), fmt.Sprintf("epoch/retire/%d", st.Current)), 5*time.Second)
	defer cancel()
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeEpoch, Epoch: st.Current,
			Outcome: ledger.OutcomeOK, Replica: n.fc.ReplicaID()}, Body: ledger.Body{Purpose: "epoch retired"}})
	}); err != nil {
		return err
	}
	b, _ := json.Marshal(epochState{Current: st.Next})
	if _, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) {
		return n.aud.Put(context.Background(), nsEpochs, "state", b)
	}); err != nil {
		return err
	}
	n.log.Info("epoch in force", "epoch", st.Next, "retired", st.Current)
	return nil
}

// retireLocal drops the sets and the seed of retired epochs on this
// replica, once it has built the current epoch's sets: the seed of the current epoch replaces the stored one and the
// seed file, so no older seed is left (forward secrecy of old sets).
func (n *Node) retireLocal(st epochState) {
	// Until this replica has the new epoch's sets, its old ones answer.
	if !n.epochReady(st.Current) {
		return
	}
	n.sets.mu.Lock()
	var old []string
	for key, ls := range n.sets.sets {
		if ls.epoch < st.Current {
			old = append(old, key)
			delete(n.sets.sets, key)
		}
	}
	n.sets.mu.Unlock()
	for _, key := range old {
		for _, pfx := range []string{"seg/" + key + "/", "built/" + key} {
			if err := n.sets.db.DropPrefix([]byte(pfx)); err != nil {
				n.log.Warn("drop retired set", "err", err)
			}
		}
	}
	n.epochMu.Lock()
	base := n.seedBase
	n.epochMu.Unlock()
	if base == nil || base.Epoch >= st.Current {
		return
	}
	s, err := n.seed(st.Current)
	if err != nil {
		n.log.Warn("retire seed", "err", err)
		return
	}
	rec := seedRecord{Epoch: st.Current, Seed: hex.EncodeToString(s[:])}
	b, _ := json.Marshal(rec)
	if err := n.sets.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/seed"), b) }); err != nil {
		n.log.Warn("retire seed", "err", err)
		return
	}
	tmp := n.path(EpochSeedFile + ".new")
	os.Remove(tmp)
	if err := writeSecret(tmp, []byte(rec.Seed+"\n")); err == nil {
		err = os.Rename(tmp, n.path(EpochSeedFile))
		if err != nil {
			n.log.Warn("retire seed file", "err", err)
		}
	}
	if err := n.sets.db.RunValueLogGC(0.01); err != nil && !errors.Is(err, badger.ErrNoRewrite) {
		n.log.Debug("local store GC", "err", err)
	}
	n.epochMu.Lock()
	n.seedBase = &rec
	n.epochMu.Unlock()
	n.log.Info("epoch seed retired", "epoch", st.Current-1)
}

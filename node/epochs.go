package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/card"
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

// epochs is the agency's OPRF epochs as this replica sees them: the
// epoch state recorded in the audit group (which epoch answers, which is
// being prepared), the seed of the oldest live epoch (in the local store,
// ratcheted forward for later epochs, never replicated) and the keys
// derived from it. It starts no goroutines.
type epochs struct {
	audit    *raftGroup
	local    *badger.DB // key x/seed: the seedRecord
	seedFile string     // the seed file of init, rewritten at each retirement
	agency   string
	replica  string
	key      ed25519.PrivateKey // agency key: signs each epoch's public keys
	log      *slog.Logger

	mu       sync.Mutex
	seedBase *seedRecord // loaded on first use
}

// epochsConfig is what newEpochs builds an epochs from.
type epochsConfig struct {
	Audit    *raftGroup
	Local    *badger.DB
	SeedFile string
	Agency   string
	Replica  string
	Key      ed25519.PrivateKey
	Logger   *slog.Logger // nil: discard
}

func newEpochs(c epochsConfig) *epochs {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &epochs{audit: c.Audit, local: c.Local, seedFile: c.SeedFile, agency: c.Agency, replica: c.Replica,
		key: c.Key, log: log.With("component", "epochs")}
}

func (ep *epochs) epochState() epochState {
	st := epochState{Current: 1}
	if b, err := ep.audit.Get(nsEpochs, "state"); err == nil {
		if err := json.Unmarshal(b, &st); err != nil || st.Current == 0 {
			ep.log.Error("epoch record does not decode", "err", err)
			return epochState{Current: 1}
		}
	}
	return st
}

// currentEpoch is the epoch answering queries: the old one until the new
// one's sets are ready and its start is committed.
func (ep *epochs) currentEpoch() uint64 { return ep.epochState().Current }

// seedRecord is the seed of the oldest live epoch, kept in the local store;
// later seeds are ratcheted from it (psi.Seed.Next), never replicated.
type seedRecord struct {
	Epoch uint64 `json:"epoch"`
	Seed  string `json:"seed"` // hex
}

// seed returns the seed of epoch e, ratcheting from the oldest live seed.
func (ep *epochs) seed(e uint64) (psi.Seed, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.local == nil {
		return psi.Seed{}, errors.New("epoch seed: the local store is not open yet")
	}
	if ep.seedBase == nil {
		rec := &seedRecord{}
		err := ep.local.View(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte("x/seed"))
			if err != nil {
				return err
			}
			return it.Value(func(v []byte) error { return json.Unmarshal(v, rec) })
		})
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			var known bool
			if rec, known, err = ep.seedOfFile(); err != nil {
				return psi.Seed{}, err
			}
			if !known {
				// Only epoch 1 exists as this replica sees the audit group
				// now: nothing to check the file against yet, nothing kept.
				return ratchet(rec, e)
			}
		case err != nil:
			return psi.Seed{}, fmt.Errorf("epoch seed: %w", err)
		}
		ep.seedBase = rec
	}
	return ratchet(ep.seedBase, e)
}

// ratchet returns the seed of epoch e from rec, the seed of an epoch at
// or before it.
func ratchet(rec *seedRecord, e uint64) (psi.Seed, error) {
	if e < rec.Epoch {
		return psi.Seed{}, fmt.Errorf("seed of epoch %d was erased when it retired: %w", e, errNoEpoch)
	}
	var s psi.Seed
	b, err := hex.DecodeString(rec.Seed)
	if err != nil || len(b) != psi.SeedSize {
		return psi.Seed{}, errors.New("epoch seed: stored seed does not decode")
	}
	copy(s[:], b)
	for i := rec.Epoch; i < e; i++ {
		s = s.Next()
	}
	return s, nil
}

// seedOfFile reads the seed file and finds whose epoch's seed it is. The
// file holds the seed of the epoch that was current when it was written
// (init's epoch 1, the epoch a retirement moved to, or the one in force
// when a join bundle was made), which is not always the epoch current now:
// a replica killed between a rotation's end and its own retirement, or one
// joining while its audit group catches up. So the epoch is not assumed:
// it is the one whose ratchet to the newest epoch with signed keys on the
// audit ledger gives those keys. Once found, the record is stored in the
// local store (known) and later starts read it. With no signed keys yet
// (only epoch 1 exists as this replica sees it) the file is epoch 1's and
// known is false: it is checked again at the next call.
func (ep *epochs) seedOfFile() (rec *seedRecord, known bool, err error) {
	b, err := readHexSecret(ep.seedFile, psi.SeedSize)
	if err != nil {
		return nil, false, fmt.Errorf("epoch seed: %w", err)
	}
	st := ep.epochState()
	newest := st.Current
	if st.Next != 0 {
		newest = st.Next
	}
	if newest < 2 {
		return &seedRecord{Epoch: 1, Seed: hex.EncodeToString(b)}, false, nil
	}
	raw, err := ep.audit.Get(nsEpochs, fmt.Sprintf("keys/%020d", newest))
	var sk signedKeys
	if err == nil {
		err = json.Unmarshal(raw, &sk)
	}
	if err != nil || len(sk.Keys) == 0 {
		return nil, false, fmt.Errorf("epoch seed: the signed keys of epoch %d are not on the audit ledger (%v); wait for the audit group to catch up", newest, err)
	}
	want := sk.Keys[0]
	var s psi.Seed
	copy(s[:], b)
	// Candidate epochs of the file, newest first: s ratcheted once more
	// for each step back.
	for e := newest; e >= 1; e-- {
		r, err := psi.NewResponder(psi.ResponderConfig{Seed: s, Agency: ep.agency, Kind: want.Kind, Epoch: newest, Reach: want.Reach, Workers: 1})
		if err != nil {
			return nil, false, fmt.Errorf("epoch seed: %w", err)
		}
		if kb, err := r.PublicKey().MarshalBinary(); err == nil && bytes.Equal(kb, want.Key) {
			rec := &seedRecord{Epoch: e, Seed: hex.EncodeToString(b)}
			v, _ := json.Marshal(rec)
			if err := ep.local.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/seed"), v) }); err != nil {
				return nil, false, fmt.Errorf("epoch seed: store its record: %w", err)
			}
			ep.log.Info("epoch seed file identified", "epoch", e, "current", st.Current)
			return rec, true, nil
		}
		s = s.Next()
	}
	return nil, false, fmt.Errorf("epoch seed: the seed file %s is the seed of no epoch of agency %s up to %d (the signed keys of epoch %d do not derive from it); restore the agency's seed file, or join the replica again from a new bundle", ep.seedFile, ep.agency, newest, newest)
}

// errNoEpoch marks a missing epoch (no key, no set).
var errNoEpoch = errors.New("no such epoch")

// epochKeys derives the public keys of every kind and reach at epoch e.
func (ep *epochs) epochKeys(e uint64) ([]card.EpochKey, error) {
	seed, err := ep.seed(e)
	if err != nil {
		return nil, err
	}
	var out []card.EpochKey
	for _, k := range ident.Kinds() {
		for _, reach := range reachNames {
			r, err := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: ep.agency, Kind: k.String(), Epoch: e, Reach: reach, Workers: 1})
			if err != nil {
				return nil, err
			}
			kb, err := r.PublicKey().MarshalBinary()
			if err != nil {
				return nil, err
			}
			out = append(out, card.EpochKey{Epoch: e, Kind: k.String(), Reach: reach, Key: kb})
		}
	}
	return out, nil
}

// cardEpochKeys returns the keys of the live epochs for the agency card.
func (ep *epochs) cardEpochKeys() []card.EpochKey {
	var out []card.EpochKey
	for _, e := range ep.epochState().live() {
		ks, err := ep.epochKeys(e)
		if err != nil {
			ep.log.Warn("epoch keys for the card", "epoch", e, "err", err)
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

// signKeys derives the public keys of epoch next and returns them with
// their record, signed by the agency key.
func (ep *epochs) signKeys(next uint64) ([]card.EpochKey, []byte, error) {
	keys, err := ep.epochKeys(next)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := json.Marshal(keys)
	rec, _ := json.Marshal(signedKeys{Epoch: next, Keys: keys,
		Signature: ed25519.Sign(ep.key, append([]byte(epochKeysContext), kb...))})
	return keys, rec, nil
}

// begin commits the start of epoch st.Current+1 (whose keys and signed
// record signKeys made) as the epoch being prepared: an epoch entry, the
// keys record and the new state. The caller has added the base sets.
func (ep *epochs) begin(ctx context.Context, actor string, st epochState, keys []card.EpochKey, rec []byte) error {
	next := st.Current + 1
	if _, err := ep.audit.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeEpoch, Epoch: next,
		Outcome: ledger.OutcomeOK, Count: uint64(len(keys)), Digest: sha256.Sum256(rec), Replica: ep.replica},
		Body: ledger.Body{Actor: actor, Purpose: "epoch start"}}); err != nil {
		return err
	}
	if _, err := ep.audit.Put(ctx, nsEpochs, fmt.Sprintf("keys/%020d", next), rec); err != nil {
		return err
	}
	nst, _ := json.Marshal(epochState{Current: st.Current, Next: next})
	if _, err := ep.audit.Put(ctx, nsEpochs, "state", nst); err != nil {
		return err
	}
	ep.log.Info("epoch rotation started", "epoch", st.Current, "next", next)
	return nil
}

// finishEpoch (on the audit leader, once its sets of st.Next are ready)
// commits the new epoch as current and the old one as retired.
func (ep *epochs) finishEpoch(st epochState) error {
	ctx, cancel := context.WithTimeout(ledger.WithCommandID(context.Background(), fmt.Sprintf("epoch/retire/%d", st.Current)), 5*time.Second)
	defer cancel()
	if _, err := ep.audit.Append(ctx, ledger.Entry{Header: ledger.Header{Type: ledger.TypeEpoch, Epoch: st.Current,
		Outcome: ledger.OutcomeOK, Replica: ep.replica}, Body: ledger.Body{Purpose: "epoch retired"}}); err != nil {
		return err
	}
	b, _ := json.Marshal(epochState{Current: st.Next})
	if _, err := ep.audit.Put(context.Background(), nsEpochs, "state", b); err != nil {
		return err
	}
	ep.log.Info("epoch in force", "epoch", st.Next, "retired", st.Current)
	return nil
}

// retireSeed makes the seed of epoch current the oldest one this replica
// keeps, in the local store and the seed file, so that no older seed is
// left (forward secrecy of old sets). The caller has dropped the sets of
// the retired epochs.
func (ep *epochs) retireSeed(current uint64) {
	ep.mu.Lock()
	base := ep.seedBase
	ep.mu.Unlock()
	if base == nil || base.Epoch >= current {
		return
	}
	s, err := ep.seed(current)
	if err != nil {
		ep.log.Warn("retire seed", "err", err)
		return
	}
	rec := seedRecord{Epoch: current, Seed: hex.EncodeToString(s[:])}
	b, _ := json.Marshal(rec)
	if err := ep.local.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/seed"), b) }); err != nil {
		ep.log.Warn("retire seed", "err", err)
		return
	}
	tmp := ep.seedFile + ".new"
	os.Remove(tmp)
	if err := writeSecret(tmp, []byte(rec.Seed+"\n")); err == nil {
		err = os.Rename(tmp, ep.seedFile)
		if err != nil {
			ep.log.Warn("retire seed file", "err", err)
		}
	}
	if err := ep.local.RunValueLogGC(0.01); err != nil && !errors.Is(err, badger.ErrNoRewrite) {
		ep.log.Debug("local store GC", "err", err)
	}
	ep.mu.Lock()
	ep.seedBase = &rec
	ep.mu.Unlock()
	ep.log.Info("epoch seed retired", "epoch", current-1)
}

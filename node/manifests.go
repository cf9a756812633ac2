package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/xborder/xborder/ledger"
)

// nsRotation is the data group's record of the newest epoch a rotation has
// announced (key "next", the epoch in decimal). Imports and rotations are
// ordered through it: a rotation writes it before it reads which batches
// are held for the new epoch's base, and an import reads it after its
// batches are in the current epoch's manifest, so that every committed
// batch reaches the new epoch one way or the other (docs/holdings.md,
// "Rotation").
const nsRotation = "rotation"

// manifestTries bounds how often appendVersion loses the race for the next
// version of a manifest to another writer before it gives up.
const manifestTries = 64

// appendVersion adds the batches that no version of the (kind, epoch)
// manifest lists yet as its next version, and returns the newest version
// that lists one of batches (0 when batches is empty).
//
// Manifests are changed by every replica, so the change is a
// compare-and-set through the data group: version n is written under the
// command ID manifest/<kind>/<epoch>/<n>, which the ledger applies at most
// once. A writer that read an old manifest submits an ID that is taken
// already, its write is dropped, and it reads the manifest again and tries
// the next version. A version is thus never lost to a concurrent writer,
// and no batch is listed twice.
func (h *holdings) appendVersion(ctx context.Context, kind string, epoch uint64, batches []string) (int, error) {
	h.manifestMu.Lock() // spares this replica's own writers the lost rounds
	defer h.manifestMu.Unlock()
	for range manifestTries {
		m, err := h.manifest(kind, epoch)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return 0, err
		}
		listed := map[string]int{}
		for i, v := range m.Versions {
			for _, b := range v {
				listed[b] = i + 1
			}
		}
		var missing []string
		newest := 0
		for _, b := range batches {
			if v, ok := listed[b]; ok {
				newest = max(newest, v)
			} else if !slices.Contains(missing, b) {
				missing = append(missing, b)
			}
		}
		if len(missing) == 0 {
			return newest, nil
		}
		n := len(m.Versions) + 1
		m.Versions = append(m.Versions, missing)
		b, _ := json.Marshal(m)
		id := fmt.Sprintf("manifest/%s/%d/%d", kind, epoch, n)
		if _, err := h.data.Put(ledger.WithCommandID(ctx, id), nsManifest, manifestKey(kind, epoch), b); err != nil {
			return 0, fmt.Errorf("record set version: %w", err)
		}
		got, err := h.manifest(kind, epoch)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return 0, err
		}
		if len(got.Versions) >= n && slices.Equal(got.Versions[n-1], missing) {
			return n, nil
		}
		// Another writer took version n: read the manifest as the leader
		// has it and try again.
		if err := h.data.Linearize(ctx); err != nil {
			return 0, fmt.Errorf("record set version: %w", err)
		}
	}
	return 0, fmt.Errorf("record set version of %s epoch %d: %d writers in a row took the next version first; try again", kind, epoch, manifestTries)
}

// announceRotation records in the data group that epoch next is being
// prepared, and waits until this replica reads at least what the leader
// held then, so that the caller's read of the held batches sees every
// import committed before the announcement.
func (h *holdings) announceRotation(ctx context.Context, next uint64) error {
	cur, err := h.announced()
	if err != nil {
		return err
	}
	if cur < next {
		id := fmt.Sprintf("rotation/next/%d", next)
		if _, err := h.data.Put(ledger.WithCommandID(ctx, id), nsRotation, "next", []byte(strconv.FormatUint(next, 10))); err != nil {
			return fmt.Errorf("announce epoch %d: %w", next, err)
		}
	}
	if err := h.data.Linearize(ctx); err != nil {
		return fmt.Errorf("announce epoch %d: %w", next, err)
	}
	return nil
}

// announced returns the newest epoch a rotation has announced (0: none).
func (h *holdings) announced() (uint64, error) {
	b, err := h.data.Get(nsRotation, "next")
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	e, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rotation record %q does not decode", b)
	}
	return e, nil
}

// placeBatches makes the batches of a committed import a version of every
// live epoch, then of the epoch a rotation announced since st was read (if
// any): the announcement is read after the batches are in the manifests,
// so a rotation either saw them when it read the held batches or is seen
// here. It returns the version of st.Current.
func (h *holdings) placeBatches(ctx context.Context, kind string, st epochState, batches []string) (int, error) {
	version := 0
	live := st.live()
	for _, e := range live {
		v, err := h.appendVersion(ctx, kind, e, batches)
		if err != nil {
			return 0, err
		}
		if e == st.Current {
			version = v
		}
	}
	next, err := h.announced()
	if err != nil {
		return version, err
	}
	if next > live[len(live)-1] {
		if _, err := h.appendVersion(ctx, kind, next, batches); err != nil {
			return version, err
		}
	}
	return version, nil
}

// appendRebase adds an empty version to the (kind, epoch) manifest that is a
// base by decree of removal id (manifest.Bases), by the same compare-and-set
// as appendVersion. The caller has rewritten the batches first, so every
// replica builds the new base from the same rows.
func (h *holdings) appendRebase(ctx context.Context, kind string, epoch uint64, id string) error {
	h.manifestMu.Lock()
	defer h.manifestMu.Unlock()
	for range manifestTries {
		m, err := h.manifest(kind, epoch)
		if errors.Is(err, ledger.ErrNotFound) {
			return nil // nothing built of this kind and epoch
		} else if err != nil {
			return err
		}
		n := len(m.Versions) + 1
		m.Versions = append(m.Versions, []string{})
		if m.Bases == nil {
			m.Bases = map[int]string{}
		}
		m.Bases[n] = id
		b, _ := json.Marshal(m)
		cid := fmt.Sprintf("manifest/%s/%d/%d", kind, epoch, n)
		if _, err := h.data.Put(ledger.WithCommandID(ctx, cid), nsManifest, manifestKey(kind, epoch), b); err != nil {
			return fmt.Errorf("record set rebase: %w", err)
		}
		got, err := h.manifest(kind, epoch)
		if err != nil {
			return err
		}
		if got.Bases[n] == id {
			return nil
		}
		if err := h.data.Linearize(ctx); err != nil {
			return fmt.Errorf("record set rebase: %w", err)
		}
	}
	return fmt.Errorf("record set rebase of %s epoch %d: %d writers in a row took the next version first; try again", kind, epoch, manifestTries)
}

// rebaseAfterRemoval decrees a new base of kind in every live epoch and in
// the one a rotation announced, after a removal rewrote batches.
func (h *holdings) rebaseAfterRemoval(ctx context.Context, kind string) error {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	id := hex.EncodeToString(rnd[:])
	epochs := h.epochs.epochState().live()
	if next, err := h.announced(); err != nil {
		return err
	} else if next > epochs[len(epochs)-1] {
		epochs = append(epochs, next)
	}
	for _, e := range epochs {
		if err := h.appendRebase(ctx, kind, e, id); err != nil {
			return err
		}
	}
	return nil
}

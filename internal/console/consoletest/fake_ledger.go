package consoletest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// append adds an entry; the caller holds mu or owns f.
func (f *Fake) append(h format.Header, b format.Body) {
	var salt format.Digest
	rand.Read(salt[:])
	h.Version, h.Index, h.BodyHash = format.EntryVersion, uint64(len(f.entries)), format.BodyHash(salt, b)
	leaf := format.EncodeLeaf(&h)
	hs, err := tlog.StoredHashes(int64(h.Index), leaf, hashReader(f.hashes))
	if err != nil {
		panic(err) // the fake's own tree: cannot fail
	}
	f.hashes = append(f.hashes, hs...)
	f.leaves = append(f.leaves, leaf)
	f.entries = append(f.entries, ledger.Entry{Header: h, Body: b, Salt: salt})
}

type hashReader []tlog.Hash

func (s hashReader) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = s[x]
	}
	return out, nil
}

// sign marks the current tree as signed; the caller holds mu or owns f.
func (f *Fake) sign() { f.checkSize = uint64(len(f.entries)) }

// note returns the signed checkpoint of the tree of size n, cosigned by
// the partner's witness when cosigned.
func (f *Fake) note(n uint64, cosigned bool) (string, error) {
	root, err := tlog.TreeHash(int64(n), hashReader(f.hashes))
	if err != nil {
		return "", err
	}
	text := log.Checkpoint{Origin: format.Origin(Agency), Size: n, Hash: root[:]}.Marshal()
	signers := []note.Signer{f.signer}
	if cosigned {
		signers = append(signers, f.cosigner)
	}
	b, err := note.Sign(&note.Note{Text: string(text)}, signers...)
	return string(b), err
}

// Tamper makes the fake serve inclusion proofs with one hash changed, as
// a lying replica would.
func (f *Fake) Tamper(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tamper = on
}

// Reads returns the ledger reads served so far.
func (f *Fake) Reads() []Read {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reads)
}

// Ledger returns every entry of the fake's ledger, for tests that look for
// leaks.
func (f *Fake) Ledger() []ledger.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}
func (f *Fake) Entries(ctx context.Context, actor httpapi.User, purpose string, flt ledger.Filter) ([]ledger.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, Read{User: actor.Name, Purpose: purpose, Index: -1})
	out := []ledger.Entry{}
	for _, e := range f.entries[min(int(flt.After), len(f.entries)):] {
		switch {
		case len(flt.Types) > 0 && !slices.Contains(flt.Types, e.Type),
			flt.Partner != "" && e.Partner != flt.Partner,
			!flt.From.IsZero() && e.Time.Before(flt.From),
			!flt.To.IsZero() && !e.Time.Before(flt.To):
			continue
		}
		out = append(out, e)
		if flt.Limit > 0 && len(out) == flt.Limit {
			break
		}
	}
	return out, nil
}
func (f *Fake) EntryProof(ctx context.Context, actor httpapi.User, purpose string, index, size uint64) (httpapi.EntryProof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := uint64(len(f.entries))
	if size == 0 {
		size = n
	}
	if size > n || index >= size {
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: index %d in a tree of %d: %w", index, index, size, httpapi.ErrNotFound)
	}
	f.reads = append(f.reads, Read{User: actor.Name, Purpose: purpose, Index: int64(index)})
	root, err := tlog.TreeHash(int64(size), hashReader(f.hashes))
	if err != nil {
		return httpapi.EntryProof{}, err
	}
	proof, err := tlog.ProveRecord(int64(size), int64(index), hashReader(f.hashes))
	if err != nil {
		return httpapi.EntryProof{}, err
	}
	p := httpapi.EntryProof{Entry: f.entries[index], Leaf: f.leaves[index], Size: size, Root: base64.StdEncoding.EncodeToString(root[:])}
	for i, h := range proof {
		if f.tamper && i == 0 {
			h[0] ^= 1
		}
		p.Proof = append(p.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	return p, nil
}
func (f *Fake) Checkpoint(ctx context.Context) (httpapi.Published, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp, err := f.note(f.checkSize, false)
	if err != nil {
		return httpapi.Published{}, err
	}
	co, err := f.note(f.checkSize, true)
	if err != nil {
		return httpapi.Published{}, err
	}
	return httpapi.Published{Checkpoint: cp, Cosigned: co}, nil
}

// Export exports the whole ledger, as the node does: the newest
// checkpoint cosigned, the ledger key and every entry.
func (f *Fake) Export(ctx context.Context, actor httpapi.User) (httpapi.Export, error) {
	if err := f.Authorize(actor, "export"); err != nil {
		return httpapi.Export{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.append(format.Header{Time: time.Now(), Type: format.TypeExport, Agency: Agency, Outcome: format.OutcomeOK},
		format.Body{Actor: actor.Name})
	f.sign()
	cp, err := f.note(f.checkSize, true)
	if err != nil {
		return httpapi.Export{}, err
	}
	var b strings.Builder
	for i, e := range f.entries {
		salt := e.Salt
		body := e.Body
		line, err := json.Marshal(format.ExportLine{Index: uint64(i), Leaf: f.leaves[i], Header: e.Header, Body: &body, Salt: &salt})
		if err != nil {
			return httpapi.Export{}, err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return httpapi.Export{Checkpoint: cp, PublicKey: f.LedgerKey + "\n", Entries: b.String()}, nil
}

// Contains reports whether s appears in any entry of the fake's ledger,
// header or body.
func (f *Fake) Contains(s string) bool {
	for _, e := range f.Ledger() {
		if strings.Contains(fmt.Sprintf("%+v", e), s) {
			return true
		}
	}
	return false
}

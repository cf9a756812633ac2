package node

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// tagResponders gives the responder of a (kind, epoch, reach) whose set
// this replica serves (localSets).
type tagResponders interface {
	responder(kind string, epoch uint64, reach string) (r *psi.Responder, version uint64, ok bool)
}

// heldRecord is one of the owner's records a follow-up's tag names: where
// it is stored (its batch and position, and the batch's row count then, so
// that a batch rewritten by a removal since is noticed, never misread),
// its class, and what the liaison sees of it. It holds no identifier. The
// follow-up's record (followup_inbox.go) stores the place and class only:
// reference, contact and handling stay in the data group and are read
// from there when shown or shared.
type heldRecord struct {
	Batch    string `json:"batch"`
	Pos      int    `json:"pos"`
	Rows     int    `json:"rows"` // rows of the batch when the tag was mapped
	Class    string `json:"class"`
	Ref      string `json:"-"`
	Contact  string `json:"-"`
	Handling string `json:"-"` // "" for rows stored before per-row codes
	Changed  bool   `json:"-"` // the batch was removed or rewritten since (resolve)
}

// tagIndex is the owner's map from follow-up tags to records of one
// (kind, epoch, reach) at one set version.
type tagIndex struct {
	version uint64
	idx     *psi.TagIndex
	records []heldRecord
}

// followupTags maps a follow-up's tags to the owner's records (issue 23,
// docs/followup.md): per (kind, epoch, reach) it computes the PRF outputs
// of the records that set holds with the set's own responder
// (psi.Responder.Precompute, as the set build does) and indexes their tags
// (psi.NewTagIndex). Tags live in memory only, in at most maxTagIndexes
// indexes, each rebuilt when the served set's version moves; they are
// never stored, logged or sent. It starts no goroutine.
type followupTags struct {
	agency string
	data   recordGetter
	sets   tagResponders

	mu    sync.Mutex // serialises builds: one Precompute of the holdings at a time
	cache map[string]*tagIndex
}

// maxTagIndexes bounds the indexes kept in memory.
const maxTagIndexes = 6

func newFollowupTags(agency string, data recordGetter, sets tagResponders) *followupTags {
	return &followupTags{agency: agency, data: data, sets: sets, cache: map[string]*tagIndex{}}
}

// errNoTagSet: this replica serves no set of the (kind, epoch, reach) a
// tag names (not built here yet, or the epoch retired): its tags cannot be
// mapped here.
var errNoTagSet = errors.New("no served set of this kind, epoch and reach on this replica")

// lookup maps each tag to the records it names (nil for a tag that names
// none), building or reusing the index of each reach named.
func (f *followupTags) lookup(kind string, epoch uint64, tags []exchange.FollowupTag) ([][]heldRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]heldRecord, len(tags))
	for i, t := range tags {
		x, err := f.index(kind, epoch, t.Reach)
		if errors.Is(err, errNoTagSet) {
			continue // names nothing this replica can map
		}
		if err != nil {
			return nil, err
		}
		for _, j := range x.idx.Lookup(t.Tag) {
			out[i] = append(out[i], x.records[j])
		}
	}
	return out, nil
}

// index returns the tag index of (kind, epoch, reach) at the set version
// this replica serves. The caller holds f.mu.
func (f *followupTags) index(kind string, epoch uint64, reach string) (*tagIndex, error) {
	resp, version, ok := f.sets.responder(kind, epoch, reach)
	if !ok {
		return nil, errNoTagSet
	}
	key := setKey(kind, epoch, reach)
	if x := f.cache[key]; x != nil && x.version == version {
		return x, nil
	}
	k, err := ident.ParseKind(kind)
	if err != nil {
		return nil, fmt.Errorf("tag index: %w", err)
	}
	m, err := readManifest(f.data, kind, epoch)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, errNoTagSet
	} else if err != nil {
		return nil, fmt.Errorf("tag index: %w", err)
	}
	var inputs [][]byte
	var records []heldRecord
	for _, v := range m.Versions {
		for _, batch := range v {
			b, err := f.data.Get(nsRows, batch)
			if errors.Is(err, ledger.ErrNotFound) {
				continue // removed since
			} else if err != nil {
				return nil, fmt.Errorf("tag index: %w", err)
			}
			rows, err := decodeRows(b)
			if err != nil {
				return nil, fmt.Errorf("tag index: batch %s: %w", batch, err)
			}
			for pos, r := range rows {
				if r.class.reach() != reach {
					continue
				}
				in := ident.Input(k, r.value)
				if in == nil {
					continue
				}
				inputs = append(inputs, in)
				records = append(records, heldRecord{Batch: batch, Pos: pos, Rows: len(rows), Class: r.class.String(),
					Ref: r.ref, Contact: r.contact, Handling: r.handling})
			}
		}
	}
	outs := make([][]byte, 0, len(inputs))
	for lo := 0; lo < len(inputs); lo += precomputePiece {
		part, err := resp.Precompute(inputs[lo:min(lo+precomputePiece, len(inputs))])
		if err != nil {
			return nil, fmt.Errorf("tag index: %w", err)
		}
		outs = append(outs, part...)
		runtime.Gosched()
	}
	idx, err := psi.NewTagIndex(resp.TagDomain(f.agency), outs)
	if err != nil {
		return nil, fmt.Errorf("tag index: %w", err)
	}
	if len(f.cache) >= maxTagIndexes {
		for k := range f.cache {
			delete(f.cache, k)
			break
		}
	}
	x := &tagIndex{version: version, idx: idx, records: records}
	f.cache[key] = x
	return x, nil
}

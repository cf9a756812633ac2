package psi

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// TagSize is the length of a follow-up tag in bytes.
const TagSize = sha256.Size

// OutputSize is the length of a PRF output (RFC 9497 Finalize with
// SHA-512): what Precompute and FinalizeKey return per input.
const OutputSize = 64

// tagLabel is the domain of follow-up tags. It is part of the protocol:
// changing it changes every tag.
const tagLabel = "xborder/v1/followup-tag"

// Tag names one hit of a match query for the follow-up after it (issue 23,
// step 2): a digest of the hit's PRF output, bound to the owner's agency,
// the kind, the epoch and the reach (TagDomain.Tag). The querier derives
// it from an output it finalised; the owner, who holds the key, derives
// the tag of each of its own records from its own outputs and so maps a
// tag back to the record that was hit (TagIndex).
//
// A tag is as good as the identifier to the owner: from the key it can
// compute the tag of any guess. So a querier sends tags of hits only,
// which name records the owner holds anyway, never of a non-hit (which
// would let the owner test guesses offline); Query.HitTags computes no
// other.
type Tag [TagSize]byte

// ErrTag is returned for a tag that cannot be derived: a PRF output of the
// wrong length, or an agency, kind or reach name that is empty, too long
// or holds '|' (as ErrKey for keys). Fix the caller.
var ErrTag = errors.New("psi: invalid tag input")

// TagDomain is what a tag is bound to: the owner's agency (the responder
// whose key computed the output), the kind, the epoch and the reach of
// that key. The same output under another domain gives another tag, so a
// tag says which key's output it came from and cannot be reused for
// another kind, epoch, reach or agency.
type TagDomain struct {
	Agency string
	Kind   string
	Epoch  uint64
	Reach  string
}

// Tag returns the follow-up tag of output, a PRF output of this domain's
// key:
//
//	SHA-256("xborder/v1/followup-tag" ‖ 0x00 ‖ lp(agency) ‖ lp(kind) ‖
//	        uint64be(epoch) ‖ lp(reach) ‖ lp(output))
//
// where lp(x) is x's length as a big-endian uint16 then x: every field is
// length-prefixed, so two domains or outputs never share an encoding.
func (d TagDomain) Tag(output []byte) (Tag, error) {
	if err := d.check(); err != nil {
		return Tag{}, err
	}
	if len(output) != OutputSize {
		return Tag{}, fmt.Errorf("tag: output of %d bytes (want %d): %w", len(output), OutputSize, ErrTag)
	}
	return d.tag(output), nil
}

func (d TagDomain) check() error {
	for _, n := range [...]struct {
		what, name string
		max        int
	}{{"agency", d.Agency, MaxAgencyLen}, {"kind", d.Kind, MaxKindLen}, {"reach", d.Reach, MaxReachLen}} {
		if err := checkName(n.what, n.name, n.max); err != nil {
			return fmt.Errorf("tag: %s name: %w", n.what, ErrTag)
		}
	}
	return nil
}

// tag computes the tag of a checked domain and output.
func (d TagDomain) tag(output []byte) Tag {
	b := make([]byte, 0, len(tagLabel)+1+3*2+len(d.Agency)+len(d.Kind)+8+len(d.Reach)+2+len(output))
	b = append(b, tagLabel...)
	b = append(b, 0)
	lp := func(x []byte) {
		b = binary.BigEndian.AppendUint16(b, uint16(len(x)))
		b = append(b, x...)
	}
	lp([]byte(d.Agency))
	lp([]byte(d.Kind))
	b = binary.BigEndian.AppendUint64(b, d.Epoch)
	lp([]byte(d.Reach))
	lp(output)
	return sha256.Sum256(b)
}

// TagDomain returns the domain of this responder's key for agency (the
// agency the key was derived for: a Responder does not keep it).
func (r *Responder) TagDomain(agency string) TagDomain {
	return TagDomain{Agency: agency, Kind: r.kind, Epoch: r.epoch, Reach: r.reach}
}

// HitTag is one hit of a query and its follow-up tag.
type HitTag struct {
	Index int // the caller's input index, as MatchKey returns it
	Tag   Tag
}

// HitTags is MatchKey that also derives the follow-up tag of every hit:
// it finalises ev under key (checking the proofs unless VerifyEvaluation
// already did), looks every output up in set, and returns, in increasing
// caller index, the inputs that hit with their tags under the domain
// (agency, the query's kind and epoch, set's reach). agency is the
// partner that evaluated (the owner of the key). A duplicated input hits
// at each of its indexes, with one tag. No tag of a non-hit is ever
// computed: the caller has nothing it could send by mistake.
func (qy *Query) HitTags(agency string, key *PublicKey, ev *Evaluation, set *Set) ([]HitTag, error) {
	if key == nil {
		return nil, fmt.Errorf("hit tags: no public key: %w", ErrKey)
	}
	if set == nil || set.kind != qy.q.cfg.Kind || set.epoch != qy.q.cfg.Epoch || !bytesEqualKey(set.key, key) {
		return nil, fmt.Errorf("hit tags: set of another key, kind or epoch: %w", ErrSetMismatch)
	}
	d := TagDomain{Agency: agency, Kind: qy.q.cfg.Kind, Epoch: qy.q.cfg.Epoch, Reach: set.reach}
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("hit tags: %w", err)
	}
	outs, err := qy.finalize(key, ev)
	if err != nil {
		return nil, fmt.Errorf("hit tags: %w", err)
	}
	hits := []HitTag{}
	for j, idx := range qy.where {
		if !set.Contains(outs[j]) {
			continue
		}
		t := d.tag(outs[j])
		for _, i := range idx {
			hits = append(hits, HitTag{Index: i, Tag: t})
		}
	}
	slices.SortFunc(hits, func(a, b HitTag) int { return a.Index - b.Index })
	return hits, nil
}

// TagIndex is an owner's map from the follow-up tags of its records to
// the records: built from its own PRF outputs of one (kind, epoch, reach),
// it finds the record a partner's tag names. The tags it holds are as
// sensitive as the outputs (each names an identifier to whoever holds the
// key): keep it where the holdings are kept, never log it.
type TagIndex struct {
	d TagDomain
	m map[Tag][]int
}

// NewTagIndex maps the tag of every output (outputs[i] is the PRF output
// of record i under the key of d, as Responder.Precompute returns them)
// to its record index. Records with the same identifier share one output,
// hence one tag.
func NewTagIndex(d TagDomain, outputs [][]byte) (*TagIndex, error) {
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("new tag index: %w", err)
	}
	x := &TagIndex{d: d, m: make(map[Tag][]int, len(outputs))}
	for i, o := range outputs {
		if len(o) != OutputSize {
			return nil, fmt.Errorf("new tag index: output %d of %d bytes (want %d): %w", i, len(o), OutputSize, ErrTag)
		}
		t := d.tag(o)
		x.m[t] = append(x.m[t], i)
	}
	return x, nil
}

// Domain returns the domain the index was built for.
func (x *TagIndex) Domain() TagDomain { return x.d }

// Len returns the number of distinct tags.
func (x *TagIndex) Len() int { return len(x.m) }

// Lookup returns the indexes of the records that tag names, in increasing
// order, or nil when it names none (a tag of another domain, of a record
// removed since, or made up).
func (x *TagIndex) Lookup(t Tag) []int {
	return slices.Clone(x.m[t])
}

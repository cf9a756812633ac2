package psi

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestTagMapsToHitRecord: the querier's tag of each hit names, in the
// owner's index built from its own outputs, exactly the records that hold
// the identifier that hit; nothing else of the query yields a tag.
func TestTagMapsToHitRecord(t *testing.T) {
	r := newTestResponder(t, "phone")
	// 200 records; records 150..159 repeat the identifiers of 10..19 (two
	// rows of one number).
	holdings := ids("phone", 0, 150)
	holdings = append(holdings, ids("phone", 10, 20)...)
	holdings = append(holdings, ids("phone", 160, 200)...)
	outs, err := r.Precompute(holdings)
	if err != nil {
		t.Fatal(err)
	}
	es, err := r.EncodeSet(1, outs)
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewSet(es)
	if err != nil {
		t.Fatal(err)
	}
	index, err := NewTagIndex(r.TagDomain("DE"), outs)
	if err != nil {
		t.Fatal(err)
	}
	if index.Len() != 190 {
		t.Fatalf("index holds %d tags; want 190 distinct identifiers", index.Len())
	}
	// The query: 5 held (one of them a repeated record, one asked twice),
	// 20 not held.
	query := [][]byte{holdings[3], holdings[12], holdings[170]}
	query = append(query, ids("phone", 5000, 5020)...)
	query = append(query, holdings[3], holdings[199])
	q := newTestQuerier(t, r, 0)
	qy, req, err := q.Blind(query, detReader(1))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.Evaluate(req, detReader(2))
	if err != nil {
		t.Fatal(err)
	}
	hits, err := qy.HitTags("DE", r.PublicKey(), ev, set)
	if err != nil {
		t.Fatalf("HitTags: %v", err)
	}
	wantIdx := []int{0, 1, 2, 23, 24}
	var gotIdx []int
	for _, h := range hits {
		gotIdx = append(gotIdx, h.Index)
	}
	if !slices.Equal(gotIdx, wantIdx) {
		t.Fatalf("HitTags indexes = %v; want %v", gotIdx, wantIdx)
	}
	plain, err := qy.MatchKey(r.PublicKey(), ev, set)
	if err != nil || !slices.Equal(plain, wantIdx) {
		t.Fatalf("MatchKey = %v, %v; want the same hits as HitTags", plain, err)
	}
	for _, h := range hits {
		var want []int
		for i, rec := range holdings {
			if bytes.Equal(rec, query[h.Index]) {
				want = append(want, i)
			}
		}
		if got := index.Lookup(h.Tag); !slices.Equal(got, want) {
			t.Errorf("Lookup(tag of query input %d) = records %v; want %v", h.Index, got, want)
		}
	}
	if hits[0].Tag != hits[3].Tag {
		t.Error("one identifier asked twice got two tags")
	}
	// The querier's tag is the owner's tag of the same output.
	if want, _ := r.TagDomain("DE").Tag(outs[170]); hits[2].Tag != want {
		t.Error("querier's tag of record 170 differs from the owner's")
	}
	// A tag of another domain names no record.
	other, err := TagDomain{Agency: "DE", Kind: "phone", Epoch: 4, Reach: "open"}.Tag(outs[3])
	if err != nil {
		t.Fatal(err)
	}
	if got := index.Lookup(other); got != nil {
		t.Errorf("a tag of epoch 4 names records %v of epoch 3", got)
	}
}

// TestHitTagsUnderEachReach: one blinding, three reaches' evaluations;
// each reach's hits get tags of that reach's domain, which only that
// reach's index maps.
func TestHitTagsUnderEachReach(t *testing.T) {
	held := map[string][][]byte{"open": ids("phone", 0, 50), "victim": ids("phone", 100, 110), "witness": ids("phone", 200, 210)}
	rs := map[string]*Responder{}
	sets := map[string]*Set{}
	idx := map[string]*TagIndex{}
	for reach, h := range held {
		r := newReachResponder(t, "phone", reach)
		outs, err := r.Precompute(h)
		if err != nil {
			t.Fatal(err)
		}
		es, err := r.EncodeSet(1, outs)
		if err != nil {
			t.Fatal(err)
		}
		if sets[reach], err = NewSet(es); err != nil {
			t.Fatal(err)
		}
		if idx[reach], err = NewTagIndex(r.TagDomain("DE"), outs); err != nil {
			t.Fatal(err)
		}
		rs[reach] = r
	}
	q, err := NewQuerier(QuerierConfig{Kind: "phone", Epoch: 3, Dummy: dummy})
	if err != nil {
		t.Fatal(err)
	}
	query := [][]byte{held["open"][1], held["victim"][2], held["witness"][3], ids("phone", 900, 901)[0]}
	qy, req, err := q.Blind(query, detReader(3))
	if err != nil {
		t.Fatal(err)
	}
	for i, reach := range []string{"open", "victim", "witness"} {
		ev, err := rs[reach].Evaluate(req, detReader(4))
		if err != nil {
			t.Fatal(err)
		}
		hits, err := qy.HitTags("DE", rs[reach].PublicKey(), ev, sets[reach])
		if err != nil {
			t.Fatalf("HitTags(%s): %v", reach, err)
		}
		if len(hits) != 1 || hits[0].Index != i {
			t.Fatalf("HitTags(%s) = %v; want input %d only", reach, hits, i)
		}
		for _, other := range []string{"open", "victim", "witness"} {
			got := idx[other].Lookup(hits[0].Tag)
			if want := other == reach; (got != nil) != want {
				t.Errorf("%s index maps the %s hit's tag to %v", other, reach, got)
			}
		}
	}
}

// TestTagDomainsApart: one output, a tag per agency, kind, epoch and
// reach; length prefixes keep shifted names apart; the formula is the
// documented one.
func TestTagDomainsApart(t *testing.T) {
	out := bytes.Repeat([]byte{7}, OutputSize)
	base := TagDomain{Agency: "DE", Kind: "phone", Epoch: 3, Reach: "open"}
	domains := []TagDomain{
		base,
		{Agency: "FR", Kind: "phone", Epoch: 3, Reach: "open"},
		{Agency: "DE", Kind: "email", Epoch: 3, Reach: "open"},
		{Agency: "DE", Kind: "phone", Epoch: 4, Reach: "open"},
		{Agency: "DE", Kind: "phone", Epoch: 3, Reach: "victim"},
		{Agency: "DE", Kind: "phone", Epoch: 3, Reach: "witness"},
		{Agency: "DEp", Kind: "hone", Epoch: 3, Reach: "open"},
		{Agency: "D", Kind: "Ephone", Epoch: 3, Reach: "open"},
	}
	seen := map[Tag]TagDomain{}
	for _, d := range domains {
		tag, err := d.Tag(out)
		if err != nil {
			t.Fatalf("%+v.Tag: %v", d, err)
		}
		if prev, ok := seen[tag]; ok {
			t.Fatalf("%+v and %+v give one tag", d, prev)
		}
		seen[tag] = d
	}
	other := bytes.Repeat([]byte{8}, OutputSize)
	if a, _ := base.Tag(out); a == must(base.Tag(other)) {
		t.Fatal("two outputs give one tag")
	}
	// The documented formula, written out.
	var b []byte
	b = append(b, "xborder/v1/followup-tag\x00"...)
	for _, x := range [][]byte{[]byte("DE"), []byte("phone")} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(x)))
		b = append(b, x...)
	}
	b = binary.BigEndian.AppendUint64(b, 3)
	b = append(b, 0, 4)
	b = append(b, "open"...)
	b = append(b, 0, OutputSize)
	b = append(b, out...)
	if got, want := must(base.Tag(out)), Tag(sha256.Sum256(b)); got != want {
		t.Fatalf("Tag = %x; want %x", got, want)
	}
}

func must(t Tag, err error) Tag {
	if err != nil {
		panic(err)
	}
	return t
}

func TestTagRefusesBadInput(t *testing.T) {
	out := bytes.Repeat([]byte{7}, OutputSize)
	for name, tc := range map[string]struct {
		d   TagDomain
		out []byte
	}{
		"short output":   {TagDomain{Agency: "DE", Kind: "phone", Reach: "open"}, out[:32]},
		"no agency":      {TagDomain{Kind: "phone", Reach: "open"}, out},
		"pipe in kind":   {TagDomain{Agency: "DE", Kind: "ph|one", Reach: "open"}, out},
		"no reach":       {TagDomain{Agency: "DE", Kind: "phone"}, out},
		"reach too long": {TagDomain{Agency: "DE", Kind: "phone", Reach: string(bytes.Repeat([]byte{'r'}, MaxReachLen+1))}, out},
	} {
		if _, err := tc.d.Tag(tc.out); !errors.Is(err, ErrTag) {
			t.Errorf("%s: Tag error %v; want ErrTag", name, err)
		}
		if _, err := NewTagIndex(tc.d, [][]byte{tc.out}); !errors.Is(err, ErrTag) {
			t.Errorf("%s: NewTagIndex error %v; want ErrTag", name, err)
		}
	}
	r := newTestResponder(t, "phone")
	q := newTestQuerier(t, r, 0)
	qy, req, err := q.Blind(ids("phone", 0, 2), detReader(1))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.Evaluate(req, detReader(2))
	if err != nil {
		t.Fatal(err)
	}
	outs, _ := r.Precompute(ids("phone", 0, 2))
	es, _ := r.EncodeSet(1, outs)
	set, _ := NewSet(es)
	if _, err := qy.HitTags("", r.PublicKey(), ev, set); !errors.Is(err, ErrTag) {
		t.Errorf("HitTags without agency: %v; want ErrTag", err)
	}
	victim := newReachResponder(t, "phone", "victim")
	if _, err := qy.HitTags("DE", victim.PublicKey(), ev, set); !errors.Is(err, ErrSetMismatch) {
		t.Errorf("HitTags under the victim key with the open set: %v; want ErrSetMismatch", err)
	}
}

// BenchmarkTagIndex measures what an owner spends to map the tags of its
// records of one (kind, epoch, reach), outputs already computed (as for
// its encoded set): one SHA-256 and one map insert per record.
func BenchmarkTagIndex(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		outs := make([][]byte, n)
		for i := range outs {
			outs[i] = make([]byte, OutputSize)
			binary.BigEndian.PutUint64(outs[i], uint64(i))
		}
		d := TagDomain{Agency: "DE", Kind: "phone", Epoch: 3, Reach: "open"}
		b.Run(fmt.Sprintf("Owner/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewTagIndex(d, outs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

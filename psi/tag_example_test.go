package psi_test

import (
	"crypto/rand"
	"fmt"

	"github.com/xborder/xborder/psi"
)

// ExampleQuery_HitTags follows up a hit: the querier derives the tag of
// each hit (of no other input), the owner maps a tag back to its record
// with the index of its own outputs.
func ExampleQuery_HitTags() {
	var seed psi.Seed // from the node's key store, never zero in practice
	owner, err := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: "TH", Kind: "phone", Epoch: 1, Reach: "victim"})
	if err != nil {
		panic(err)
	}
	records := [][]byte{[]byte("phone:+66812345678"), []byte("phone:+66898765432")}
	outputs, err := owner.Precompute(records)
	if err != nil {
		panic(err)
	}
	es, err := owner.EncodeSet(1, outputs)
	if err != nil {
		panic(err)
	}
	set, err := psi.NewSet(es)
	if err != nil {
		panic(err)
	}
	index, err := psi.NewTagIndex(owner.TagDomain("TH"), outputs)
	if err != nil {
		panic(err)
	}

	// Querier (GB): blind once, no key bound; check under the victim key.
	q, err := psi.NewQuerier(psi.QuerierConfig{Kind: "phone", Epoch: 1, Dummy: dummy})
	if err != nil {
		panic(err)
	}
	query, req, err := q.Blind([][]byte{[]byte("phone:+447700900123"), []byte("phone:+66898765432")}, rand.Reader)
	if err != nil {
		panic(err)
	}
	ev, err := owner.Evaluate(req, rand.Reader)
	if err != nil {
		panic(err)
	}
	hits, err := query.HitTags("TH", owner.PublicKey(), ev, set)
	if err != nil {
		panic(err)
	}
	for _, h := range hits {
		// The follow-up sends h.Tag; the owner looks it up.
		fmt.Println("query input", h.Index, "names owner record", index.Lookup(h.Tag))
	}
	// Output: query input 1 names owner record [1]
}

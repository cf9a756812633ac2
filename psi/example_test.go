package psi_test

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/xborder/xborder/psi"
)

// dummy frames a padding input under a reserved first byte; in xborder,
// ident supplies this framing.
func dummy(r io.Reader) ([]byte, error) {
	b := make([]byte, 17)
	b[0] = 0xff
	_, err := io.ReadFull(r, b[1:])
	return b, err
}

// Example runs one match: the responder publishes its encoded set, the
// querier blinds, the responder evaluates, the querier verifies and looks
// up. Messages go through their wire encodings.
func Example() {
	var seed psi.Seed // from the node's key store, never zero in practice
	resp, err := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: "DE", Kind: "phone", Epoch: 1, Reach: "open"})
	if err != nil {
		panic(err)
	}
	holdings := [][]byte{[]byte("phone:+4915112345678"), []byte("phone:+4930123456")}
	outputs, err := resp.Precompute(holdings)
	if err != nil {
		panic(err)
	}
	set, err := resp.EncodeSet(1, outputs)
	if err != nil {
		panic(err)
	}
	setBytes, _ := set.MarshalBinary()

	// Querier: pins the key, syncs the set, queries.
	decoded, err := psi.UnmarshalEncodedSet(setBytes)
	if err != nil {
		panic(err)
	}
	partnerSet, err := psi.NewSet(decoded)
	if err != nil {
		panic(err)
	}
	q, err := psi.NewQuerier(psi.QuerierConfig{Key: resp.PublicKey(), Kind: "phone", Epoch: 1, Dummy: dummy})
	if err != nil {
		panic(err)
	}
	inputs := [][]byte{[]byte("phone:+33612345678"), []byte("phone:+4930123456")}
	query, req, err := q.Blind(inputs, rand.Reader)
	if err != nil {
		panic(err)
	}
	reqBytes, _ := req.MarshalBinary()

	// Responder: after policy, budget and audit.
	inReq, err := psi.UnmarshalEvalRequest(reqBytes)
	if err != nil {
		panic(err)
	}
	ev, err := resp.Evaluate(inReq, rand.Reader)
	if err != nil {
		panic(err)
	}
	evBytes, _ := ev.MarshalBinary()

	// Querier: verify, finalise, look up.
	inEv, err := psi.UnmarshalEvaluation(evBytes)
	if err != nil {
		panic(err)
	}
	hits, err := query.Match(inEv, partnerSet)
	if err != nil {
		panic(err)
	}
	fmt.Println("padded query:", inReq.Len(), "set entries:", partnerSet.Entries(), "hits:", hits)
	// Output: padded query: 2 set entries: 896 hits: [1]
}

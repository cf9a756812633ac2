package psi

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
)

// TestChunkCap holds the cap of 1,024 elements per DLEQ proof on both
// sides (issue 19, item 9; the reasoning is in docs/psi.md): the querier
// neither chooses nor accepts a larger chunk, and the responder refuses to
// prove one, whether the request is built in memory or decoded.
func TestChunkCap(t *testing.T) {
	const want = 1024
	r := newTestResponder(t, "phone")

	if _, err := NewQuerier(QuerierConfig{Key: r.PublicKey(), Kind: "phone", Epoch: 3, Dummy: dummy, ChunkSize: want + 1}); err == nil {
		t.Errorf("NewQuerier with chunk size %d succeeded; want an error", want+1)
	}

	// One worker would split 8,192 elements into four chunks of 2,048.
	q, err := NewQuerier(QuerierConfig{Key: r.PublicKey(), Kind: "phone", Epoch: 3, Dummy: dummy, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c := q.chunkSize(8192); c > want {
		t.Errorf("querier chose chunks of %d elements; want at most %d", c, want)
	}
	_, req, err := q.Blind(ids("q", 0, 100), detReader(1))
	if err != nil {
		t.Fatal(err)
	}

	// The responder refuses a larger chunk, in memory and on the wire.
	big := &EvalRequest{Kind: req.Kind, Epoch: req.Epoch, ChunkSize: 2 * want, elements: req.elements}
	if ev, err := r.Evaluate(big, rand.Reader); !errors.Is(err, ErrRequest) || ev != nil {
		t.Errorf("Evaluate of %d-element chunks: %v (answered: %t); want ErrRequest", big.ChunkSize, err, ev != nil)
	}
	b, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// version, suite, kind (length-prefixed), epoch: then the chunk size.
	off := 2 + 1 + len(req.Kind) + 8
	binary.BigEndian.PutUint32(b[off:], uint32(2*want))
	if _, err := UnmarshalEvalRequest(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("decoding a request of %d-element chunks: %v; want ErrMalformed", 2*want, err)
	}

	// The querier refuses an evaluation of larger chunks.
	ev, err := r.Evaluate(req, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev.ChunkSize, ev.proofs = 2*want, ev.proofs[:chunks(ev.Len(), 2*want)]
	if _, err := ev.MarshalBinary(); err == nil {
		t.Errorf("encoding an evaluation of %d-element chunks succeeded; want an error", 2*want)
	}
}

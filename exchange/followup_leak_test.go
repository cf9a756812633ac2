package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/xborder/xborder/psi"
)

// tap records every byte a stream carries, both ways.
type tap struct {
	Stream
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (t tap) Read(p []byte) (int, error) {
	n, err := t.Stream.Read(p)
	t.mu.Lock()
	t.buf.Write(p[:n])
	t.mu.Unlock()
	return n, err
}

func (t tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf.Write(p)
	t.mu.Unlock()
	return t.Stream.Write(p)
}

type tapOpener struct {
	o   Opener
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *tapOpener) Open(ctx context.Context, peer PeerID, proto string) (Stream, error) {
	st, err := o.o.Open(ctx, peer, proto)
	if err != nil {
		return nil, err
	}
	return tap{Stream: st, mu: &o.mu, buf: &o.buf}, nil
}

// TestFollowupWireHoldsNoIdentifier: what the follow-up protocol carries,
// both ways, holds no identifier of the query, raw, canonical or hashed,
// no PRF output, and no tag of an input that did not hit (so the owner,
// who holds the key, can test no guess); the tags of the hits named are
// the only trace of the query.
func TestFollowupWireHoldsNoIdentifier(t *testing.T) {
	w := newWorld(t, 50, nil)
	d := newDesk(t, w, nil, nil)
	request, hits := d.hits(t)
	o := &tapOpener{o: d.fr}
	f := followupOf(request)
	for _, reach := range Reaches {
		for _, h := range hits[reach] {
			f.Tags = append(f.Tags, tagOf(reach, h))
		}
	}
	ctx := context.Background()
	ack, err := w.client.Followup(ctx, o, "12D3KooWDE", f)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignFollowupAnswer(keyDE, &FollowupAnswer{FollowupID: ack.ID, RequestID: request, Time: now, Owner: "DE",
		Querier: "FR", Handling: "H2", Shared: []SharedRecord{{Hit: 1, Reference: "DE-5", Contact: "desk"}}})
	if err != nil {
		t.Fatal(err)
	}
	d.answers.set("FR", ack.ID, &FollowupState{Deadline: ack.Deadline, Answer: signed})
	if _, err := w.client.PollFollowup(ctx, o, "12D3KooWDE", FollowupPoll{Owner: "DE", ID: ack.ID, RequestID: request, Tags: len(f.Tags)}); err != nil {
		t.Fatal(err)
	}
	carried := o.buf.Bytes()
	if len(carried) < 5*psi.TagSize {
		t.Fatalf("tapped %d bytes; the follow-up was not carried", len(carried))
	}
	for _, h := range f.Tags {
		if !bytes.Contains(carried, h.Tag[:]) {
			t.Fatal("a tag named is not on the wire: the tap sees nothing")
		}
	}
	for i, in := range reachInputs() {
		canonical := fmt.Sprintf("+4915%09d", []int{5, 6, victimFrom + 1, victimFrom + 2, witnessFrom + 3, 700_000, 700_001}[i])
		sum := sha256.Sum256(in)
		csum := sha256.Sum256([]byte(canonical))
		for what, b := range map[string][]byte{"input": in, "canonical form": []byte(canonical), "SHA-256 of the input": sum[:],
			"SHA-256 of the canonical form": csum[:]} {
			if bytes.Contains(carried, b) {
				t.Errorf("the %s of query input %d is on the wire", what, i)
			}
		}
		// Every reach's PRF output of the input, and its tag unless it
		// hit there.
		for _, reach := range Reaches {
			outs, err := w.reach[reach].Precompute([][]byte{in})
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(carried, outs[0]) || bytes.Contains(carried, outs[0][:16]) {
				t.Errorf("the %s output of query input %d is on the wire", reach, i)
			}
			tag, err := w.reach[reach].TagDomain("DE").Tag(outs[0])
			if err != nil {
				t.Fatal(err)
			}
			hit := false
			for _, h := range hits[reach] {
				hit = hit || h.Index == i
			}
			if !hit && bytes.Contains(carried, tag[:]) {
				t.Errorf("the %s tag of query input %d, which did not hit there, is on the wire", reach, i)
			}
		}
	}
}

package psi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/zk/dleq"
)

// VerifyEvaluation checks that ev answers req and that every chunk's
// proof shows it was computed with the secret key behind key. It returns
// an error wrapping ErrProof when it does not (the responder is broken or
// cheating, or evaluated under another reach's key: use nothing of it),
// ErrKey for a nil key. A transport that checks each reach's evaluation
// against the pinned key of that reach calls it; a later FinalizeKey or
// MatchKey of the query that built req, with the same key, then skips the
// proofs instead of checking them twice. Do not call it on one evaluation
// from several goroutines at once.
func VerifyEvaluation(key *PublicKey, req *EvalRequest, ev *Evaluation) error {
	if key == nil || key.e == nil {
		return fmt.Errorf("verify evaluation: no public key: %w", ErrKey)
	}
	if req == nil {
		return fmt.Errorf("verify evaluation: no request: %w", ErrProof)
	}
	if err := verify(workerCount(0), dleqParams(), key, req, ev); err != nil {
		return fmt.Errorf("verify evaluation: %w", err)
	}
	return nil
}

// verify checks ev against req and key, on all workers, unless ev was
// already verified for this very request and key. On success it records
// that on ev.
func verify(workers int, p dleq.Params, key *PublicKey, req *EvalRequest, ev *Evaluation) error {
	n := req.Len()
	if ev == nil || ev.Len() != n || ev.ChunkSize != req.ChunkSize || len(ev.proofs) != chunks(n, req.ChunkSize) {
		return fmt.Errorf("evaluation does not answer the request: %w", ErrProof)
	}
	pkBytes, err := key.e.MarshalBinaryCompress()
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if ev.checkedReq == req && string(ev.checkedKey[:]) == string(pkBytes) {
		return nil
	}
	for i, e := range ev.elements {
		if e == nil || e.IsIdentity() {
			return fmt.Errorf("evaluated element %d is the identity: %w", i, ErrProof)
		}
	}
	cs := req.ChunkSize
	err = parallelItems(workers, len(ev.proofs), func(c int) error {
		lo, hi := c*cs, min((c+1)*cs, n)
		if !verifyChunk(p, key.e, pkBytes, req.elements[lo:hi], ev.elements[lo:hi], &ev.proofs[c]) {
			return fmt.Errorf("chunk %d of %d: %w", c, len(ev.proofs), ErrProof)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ev.checkedReq = req
	copy(ev.checkedKey[:], pkBytes)
	return nil
}

// verifyChunk checks an RFC 9497 batch DLEQ proof (VerifyProof with A = G,
// B = pk, C = blinded, D = evaluated). It computes the same transcript as
// circl's dleq.Verifier.VerifyBatchRFC9497, but forms the composites
// M = Σ d_i·C_i and Z = Σ d_i·D_i with a variable-time multi-scalar
// multiplication instead of 2n single multiplications; every input is
// public, so variable time leaks nothing. TestVerifyChunkMatchesCircl holds
// it to circl's verifier.
func verifyChunk(p dleq.Params, pk group.Element, pkBytes []byte, blinded, evaluated []group.Element, proof *[proofSize]byte) bool {
	n := len(blinded)
	if n == 0 || n != len(evaluated) || n > MaxChunk {
		return false
	}
	raw := proof[:]
	c, s, err := parseProof(raw)
	if err != nil {
		return false
	}

	// seed = H(len ‖ pk ‖ len ‖ "Seed-" ‖ DST)
	h := p.H.New()
	var l2 [2]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint16(l2[:], uint16(len(b)))
		h.Write(l2[:])
		h.Write(b)
	}
	put(pkBytes)
	put(append([]byte("Seed-"), p.DST...))
	seed := h.Sum(nil)

	h2s := append([]byte("HashToScalar-"), p.DST...)
	ds := make([][32]byte, n)
	buf := make([]byte, 0, 2+len(seed)+2+3*(2+elementSize)+len("Composite"))
	for i := range n {
		ci, err1 := blinded[i].MarshalBinaryCompress()
		di, err2 := evaluated[i].MarshalBinaryCompress()
		if err1 != nil || err2 != nil {
			return false
		}
		buf = buf[:0]
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(seed)))
		buf = append(buf, seed...)
		buf = binary.BigEndian.AppendUint16(buf, uint16(i))
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(ci)))
		buf = append(buf, ci...)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(di)))
		buf = append(buf, di...)
		buf = append(buf, "Composite"...)
		d := g.HashToScalar(buf, h2s)
		b, err := d.MarshalBinary()
		if err != nil || len(b) != 32 {
			return false
		}
		copy(ds[i][:], b)
	}
	m := msm(blinded, ds)
	z := msm(evaluated, ds)

	t2 := g.NewElement().Add(g.NewElement().MulGen(s), g.NewElement().Mul(pk, c))
	t3 := g.NewElement().Add(g.NewElement().Mul(m, s), g.NewElement().Mul(z, c))

	var tr []byte
	for _, e := range []group.Element{m, z, t2, t3} {
		b, err := e.MarshalBinaryCompress()
		if err != nil {
			return false
		}
		if len(tr) == 0 {
			tr = binary.BigEndian.AppendUint16(tr, uint16(len(pkBytes)))
			tr = append(tr, pkBytes...)
		}
		tr = binary.BigEndian.AppendUint16(tr, uint16(len(b)))
		tr = append(tr, b...)
	}
	tr = append(tr, "Challenge"...)
	want, err := g.HashToScalar(tr, h2s).MarshalBinary()
	return err == nil && bytes.Equal(want, raw[:scalarSize])
}

// parseProof decodes a proof c ‖ s, rejecting non-canonical scalars.
func parseProof(b []byte) (c, s group.Scalar, err error) {
	if len(b) != proofSize {
		return nil, nil, errors.New("proof of wrong length")
	}
	c, s = g.NewScalar(), g.NewScalar()
	if err := c.UnmarshalBinary(b[:scalarSize]); err != nil {
		return nil, nil, err
	}
	if err := s.UnmarshalBinary(b[scalarSize:]); err != nil {
		return nil, nil, err
	}
	return c, s, nil
}

// msm returns Σ k_i·P_i for scalars given as 32-byte little-endian
// encodings, by Pippenger's bucket method. It runs in variable time: use
// it on public values only.
func msm(points []group.Element, scalars [][32]byte) group.Element {
	n := len(points)
	c := 4
	switch {
	case n >= 4096:
		c = 9
	case n >= 1024:
		c = 8
	case n >= 256:
		c = 7
	case n >= 64:
		c = 6
	case n >= 16:
		c = 5
	}
	const scalarBits = 253
	windows := (scalarBits + c - 1) / c
	buckets := make([]group.Element, 1<<c)
	for i := range buckets {
		buckets[i] = g.Identity()
	}
	used := make([]bool, 1<<c)
	acc := g.Identity()
	sum, total := g.NewElement(), g.NewElement()
	for w := windows - 1; w >= 0; w-- {
		for range c {
			acc.Dbl(acc)
		}
		clear(used)
		for i, k := range scalars {
			d := window(&k, w*c, c)
			if d == 0 {
				continue
			}
			if used[d] {
				buckets[d].Add(buckets[d], points[i])
			} else {
				buckets[d].Set(points[i])
				used[d] = true
			}
		}
		// total = Σ j·bucket[j] as running sums from the top.
		sum.Set(g.Identity())
		total.Set(g.Identity())
		started := false
		for j := len(buckets) - 1; j > 0; j-- {
			if used[j] {
				sum.Add(sum, buckets[j])
				started = true
			}
			if started {
				total.Add(total, sum)
			}
		}
		acc.Add(acc, total)
	}
	return acc
}

// window returns the c bits of the little-endian scalar k starting at bit
// position pos.
func window(k *[32]byte, pos, c int) int {
	var v uint32
	byteIdx := pos / 8
	for i := 0; i < 4 && byteIdx+i < 32; i++ {
		v |= uint32(k[byteIdx+i]) << (8 * i)
	}
	return int(v>>(pos%8)) & (1<<c - 1)
}

package ident

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The frame of an OPRF input: domain tag, version, kind, length, bytes.
const (
	inputTag     = "xborder/v1"
	inputVersion = 0x01
	// DummyLen is the number of random bytes in a padding element.
	DummyLen = 32
)

// Input returns the bytes that enter the OPRF for the canonical form
// canonical of kind k:
//
//	"xborder/v1" || 0x01 (version) || k (1 byte) || len(canonical) (uint16, big endian) || canonical
//
// The frame is unambiguous: equal strings of different kinds give different
// inputs, and no input is a prefix of another. Input returns nil for
// anything that Canonical never produces (a kind outside Kinds(), the Dummy
// kind above all, an empty string, or one longer than MaxLen), so it never
// frames an input under the Dummy kind. It does not check that canonical
// is canonical: pass it what Canonical returned.
func Input(k Kind, canonical string) []byte {
	if !k.valid() || canonical == "" || len(canonical) > MaxLen {
		return nil
	}
	return frame(k, []byte(canonical))
}

// DummyInput returns a padding element: the frame of Input under the Dummy
// kind around DummyLen bytes read from r (crypto/rand.Reader in
// production). It matches no identifier, and no two dummies match each
// other except with negligible probability.
func DummyInput(r io.Reader) ([]byte, error) {
	b := make([]byte, DummyLen)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read dummy randomness: %w", err)
	}
	return frame(Dummy, b), nil
}

func frame(k Kind, b []byte) []byte {
	out := make([]byte, 0, len(inputTag)+4+len(b))
	out = append(out, inputTag...)
	out = append(out, inputVersion, byte(k))
	out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
	return append(out, b...)
}

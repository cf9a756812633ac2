package format

import (
	"crypto/ed25519"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Origin returns the checkpoint origin of an agency's ledger,
// "xborder.ledger/<agency>"; it names the agency's signing key too.
func Origin(agency string) string { return "xborder.ledger/" + agency }

// VerifierKey returns the signed-note verifier key (name+hash+base64) of an
// agency public key, named by the ledger origin.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	v, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return "", fmt.Errorf("verifier key for %s: %w", origin, err)
	}
	return v, nil
}

// Checkpoint is a signed C2SP tlog-checkpoint of the ledger.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
	Note   []byte // the signed note, as served and exported
}

// ParseCheckpoint checks the signature of a signed checkpoint note with the
// verifier key and parses it. The origin must be the key's name.
func ParseCheckpoint(signed []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	if c.Origin != v.Name() || len(c.Hash) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: origin %q signed by %q", c.Origin, v.Name())
	}
	cp := Checkpoint{Origin: c.Origin, Size: c.Size, Note: signed}
	copy(cp.Root[:], c.Hash)
	return cp, nil
}

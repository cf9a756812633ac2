package exchange

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ProtoWitness carries one C2SP tlog-witness request and its answer:
// add-checkpoint, or the xborder extension "latest" (gossip).
const ProtoWitness = "/xborder/witness/1.0.0"

// Limits of the witness protocol.
const (
	// MaxWitnessRequest bounds a witness request frame: 63 proof lines
	// and a checkpoint with a few signatures fit many times over.
	MaxWitnessRequest = 16 << 10
	// MaxWitnessAnswer bounds a witness answer frame.
	MaxWitnessAnswer = 16 << 10
	// MaxProofLines is the most consistency proof lines a request may
	// carry (C2SP tlog-witness).
	MaxProofLines = 63
)

// Witness answer statuses: the HTTP status codes C2SP tlog-witness gives
// each outcome, carried as the first line of the answer.
const (
	WitnessOK            = 200 // body: the witness's cosignature lines (add-checkpoint) or a cosigned checkpoint (latest)
	WitnessBadRequest    = 400 // malformed request, or old size above the checkpoint's size
	WitnessForbidden     = 403 // no valid signature of the origin's pinned key
	WitnessUnknownLog    = 404 // the origin is not a pinned partner's ledger (latest: nothing cosigned yet)
	WitnessConflict      = 409 // body: the size the witness last cosigned, and a newline
	WitnessUnprocessable = 422 // bad consistency proof, or same size with another root: a split view
	WitnessUnavailable   = 503 // the witness cannot record its state now (no quorum); try later
)

// WitnessOriginPrefix starts the origin of every agency ledger; the rest is
// the agency code (ledger/format.Origin).
const WitnessOriginPrefix = "xborder.ledger/"

// WitnessName returns the cosigner name of an agency's witness.
func WitnessName(agency string) string { return "xborder.witness/" + agency }

// algCosignatureV1 is the signed-note algorithm byte of Ed25519
// cosignature/v1 keys (C2SP tlog-cosignature).
const algCosignatureV1 = 0x04

// WitnessVerifierKey returns the note verifier key of an agency's witness
// key: name+hash+base64(0x04 ‖ key), the vkey form C2SP tlog-cosignature
// gives Ed25519 cosignature/v1 keys.
func WitnessVerifierKey(agency string, pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("witness key of %s: %d bytes, want %d", agency, len(pub), ed25519.PublicKeySize)
	}
	name := WitnessName(agency)
	key := append([]byte{algCosignatureV1}, pub...)
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	return fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(key)), nil
}

// NewCosigner returns the cosignature/v1 signer of an agency's witness
// key (transparency-dev's NewSignerForCosignatureV1).
func NewCosigner(agency string, priv ed25519.PrivateKey) (note.Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("witness key of %s: %d bytes, want %d", agency, len(priv), ed25519.PrivateKeySize)
	}
	vkey, err := WitnessVerifierKey(agency, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(vkey, "+", 3)
	skey := "PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, priv.Seed()...))
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("witness key of %s: %w", agency, err)
	}
	return s, nil
}

// NewCosignatureVerifier returns the verifier of a witness verifier key
// (transparency-dev's NewVerifierForCosignatureV1).
func NewCosignatureVerifier(vkey string) (note.Verifier, error) {
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, fmt.Errorf("witness verifier key: %w", err)
	}
	return v, nil
}

// AddCheckpoint is a C2SP tlog-witness add-checkpoint request: the size of
// the checkpoint the witness last cosigned (as the client believes), a
// consistency proof from it to the new checkpoint, and the new checkpoint,
// a signed note.
type AddCheckpoint struct {
	OldSize    uint64
	Proof      []tlog.Hash
	Checkpoint []byte
}

// Marshal returns the request body: "old N", the proof lines, an empty
// line, the checkpoint.
func (r *AddCheckpoint) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// errWitnessRequest marks a request that does not parse.
var errWitnessRequest = errors.New("malformed witness request")

// ParseAddCheckpoint parses an add-checkpoint request body. It checks the
// form only (sizes in canonical decimal, at most MaxProofLines hashes of 32
// bytes in standard base64); the checkpoint is the rest, unparsed.
func ParseAddCheckpoint(b []byte) (*AddCheckpoint, error) {
	line, rest, ok := bytes.Cut(b, []byte("\n"))
	num, isOld := bytes.CutPrefix(line, []byte("old "))
	if !ok || !isOld {
		return nil, fmt.Errorf("no old size line: %w", errWitnessRequest)
	}
	n, err := parseSize(num)
	if err != nil {
		return nil, err
	}
	r := &AddCheckpoint{OldSize: n}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("no empty line before the checkpoint: %w", errWitnessRequest)
		}
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return nil, fmt.Errorf("more than %d proof lines: %w", MaxProofLines, errWitnessRequest)
		}
		var h tlog.Hash
		if d, err := base64.StdEncoding.Strict().DecodeString(string(line)); err != nil || len(d) != len(h) {
			return nil, fmt.Errorf("proof line %d is not a base64 hash: %w", len(r.Proof)+1, errWitnessRequest)
		} else {
			copy(h[:], d)
		}
		r.Proof = append(r.Proof, h)
	}
	r.Checkpoint = rest
	return r, nil
}

// parseSize parses a tree size in decimal with no leading zeros.
func parseSize(b []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != string(b) || n >= 1<<63 {
		return 0, fmt.Errorf("size %.20q is not a decimal with no leading zeros: %w", b, errWitnessRequest)
	}
	return n, nil
}

// latestPrefix starts a "latest" request: "latest <origin>\n". It asks the
// witness for the newest checkpoint of origin it cosigned, cosigned anew.
const latestPrefix = "latest "

// WitnessAnswer is a witness's answer: a status and its body.
type WitnessAnswer struct {
	Status int
	Body   []byte
	// refused marks an answer that draws on the sender's refusal budget
	// (WitnessConfig.RefusalBurst); it is not sent.
	refused bool
}

// Marshal returns the answer frame: the status in decimal, a newline, the
// body.
func (a *WitnessAnswer) Marshal() []byte {
	return append([]byte(strconv.Itoa(a.Status)+"\n"), a.Body...)
}

// ParseWitnessAnswer parses an answer frame.
func ParseWitnessAnswer(b []byte) (*WitnessAnswer, error) {
	line, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok || len(line) != 3 {
		return nil, fmt.Errorf("witness answer: no status line: %w", ErrVerify)
	}
	s, err := strconv.Atoi(string(line))
	if err != nil || s < 100 || s > 599 {
		return nil, fmt.Errorf("witness answer: status %q: %w", line, ErrVerify)
	}
	return &WitnessAnswer{Status: s, Body: body}, nil
}

// ConflictSize reads the size a 409 answer carries.
func (a *WitnessAnswer) ConflictSize() (uint64, error) {
	num, ok := bytes.CutSuffix(a.Body, []byte("\n"))
	if a.Status != WitnessConflict || !ok {
		return 0, fmt.Errorf("witness answer: not a conflict with a size: %w", ErrVerify)
	}
	n, err := parseSize(num)
	if err != nil {
		return 0, fmt.Errorf("witness answer: %w: %w", ErrVerify, err)
	}
	return n, nil
}

// AddCheckpoint sends an add-checkpoint request to a partner's witness and
// returns its answer, whatever its status. An error wraps ErrUnavailable
// (no stream, no answer) or ErrVerify (an answer that does not parse).
func (c *Client) AddCheckpoint(ctx context.Context, o Opener, peer PeerID, r *AddCheckpoint) (*WitnessAnswer, error) {
	b, err := c.roundTrip(ctx, o, peer, ProtoWitness, r.Marshal(), MaxWitnessAnswer)
	if err != nil {
		return nil, fmt.Errorf("add checkpoint: %w", err)
	}
	return ParseWitnessAnswer(b)
}

// LatestCheckpoint asks a partner's witness for the newest checkpoint of
// origin it cosigned. A 200 answer's body is that checkpoint with the
// witness's fresh cosignature; 404 means it cosigned none.
func (c *Client) LatestCheckpoint(ctx context.Context, o Opener, peer PeerID, origin string) (*WitnessAnswer, error) {
	b, err := c.roundTrip(ctx, o, peer, ProtoWitness, []byte(latestPrefix+origin+"\n"), MaxWitnessAnswer)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	return ParseWitnessAnswer(b)
}

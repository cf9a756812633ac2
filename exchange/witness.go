package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/internal/wire"
)

// Errors of the witness's seams.
var (
	// ErrUnknownLog: the origin is not the ledger of a pinned partner
	// (WitnessLogs). The witness answers 404.
	ErrUnknownLog = errors.New("unknown log origin")
	// ErrWitnessConflict: the witness state changed between the read and
	// the write (WitnessState.Swap): another request won. The witness
	// answers 409 with the new size.
	ErrWitnessConflict = errors.New("witness state changed")
)

// WitnessLogs gives the logs a witness follows: node implements it with
// its pinned cards (each partner's ledger origin and agency key).
type WitnessLogs interface {
	// LogKey returns the note verifier key of the ledger named origin, or
	// an error wrapping ErrUnknownLog.
	LogKey(origin string) (string, error)
}

// WitnessState is the witness's memory: per origin, the newest checkpoint
// it cosigned. node keeps it in the audit group's replicated records, so
// that no restart or failover rolls it back.
type WitnessState interface {
	// Latest returns the checkpoint note last cosigned for origin, or nil
	// when none.
	Latest(ctx context.Context, origin string) ([]byte, error)
	// Swap replaces old (nil: none) with next, committed before it
	// returns; it fails with ErrWitnessConflict when the stored note is
	// no longer old. Any other error answers 503.
	Swap(ctx context.Context, origin string, old, next []byte) error
	// Alarm records a split view (an entry and its evidence); it is
	// called before the witness answers 422.
	Alarm(ctx context.Context, a *Alarm) error
}

// Alarm is the evidence of a split view: two checkpoints of one origin,
// both signed by its key, that cannot both be true (same size and another
// root, or a larger tree the submitted consistency proof does not lead to).
type Alarm struct {
	Origin string
	From   Peer   // who submitted the new checkpoint
	Reason string // "same size, another root" or "consistency proof fails"
	// Old is what the witness had cosigned, New what it refused.
	OldSize, NewSize uint64
	OldRoot, NewRoot tlog.Hash
	OldNote, NewNote []byte
	Proof            []tlog.Hash // the proof submitted with New
}

// Digest names the split view: SHA-256 over the origin, the reason and
// both sizes and roots. The same split view seen again, in whatever
// rendering of its notes (other signatures, extension lines, a size with a
// leading zero), has the same digest: record it once.
func (a *Alarm) Digest() [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "xborder/v1/split-view\x00%d:%s\x00%d:%s\x00%d\x00%x\x00%d\x00%x",
		len(a.Origin), a.Origin, len(a.Reason), a.Reason, a.OldSize, a.OldRoot[:], a.NewSize, a.NewRoot[:]))
}

// WitnessConfig configures a Witness. Cosigner, Logs and State are
// required.
type WitnessConfig struct {
	// Cosigner signs cosignatures (NewCosigner of the agency's witness key).
	Cosigner note.Signer
	Logs     WitnessLogs
	State    WitnessState
	// Timeout bounds each stream; zero means DefaultTimeout.
	Timeout time.Duration
	// RefusalBurst is how many refused witness requests (400, 403, 422,
	// 404 for an origin not pinned: each a log line, a split view an
	// alarm entry) a
	// partner agency may draw in a row; past it the witness throttles the
	// agency: it resets the agency's witness streams unread, checks and
	// records nothing, and calls Throttled, until the budget refills at
	// RefusalRate a second. Cosigned requests, 409s (routine for a log
	// that forgot what it sent), a latest with nothing cosigned yet and
	// 503s draw nothing. Zero means
	// DefaultRefusalBurst.
	RefusalBurst int
	// RefusalRate is how many refusals a second refill a partner agency's
	// budget; zero means DefaultRefusalRate.
	RefusalRate float64
	// MaxInFlight is how many witness requests of one partner agency are
	// read and answered at once; the agency's other streams wait for a
	// slot until their deadline. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// Throttled, when set, is called once per stream reset because its
	// partner agency is over its refusal budget. It must not block.
	Throttled func(from Peer, proto string)
	// Logger receives one line per refused request; nil discards.
	Logger *slog.Logger
}

// Witness serves ProtoWitness: it cosigns a partner's checkpoint only if it
// is consistent with the last one it cosigned for that origin (C2SP
// tlog-witness), and records a split view as an Alarm. It is safe for
// concurrent use and starts no goroutine.
type Witness struct {
	cfg    WitnessConfig
	log    *slog.Logger
	limits *partnerLimits
}

// NewWitness checks cfg and returns a witness.
func NewWitness(cfg WitnessConfig) (*Witness, error) {
	if cfg.Cosigner == nil || cfg.Logs == nil || cfg.State == nil {
		return nil, errors.New("new witness: cosigner, logs and state are required")
	}
	if cfg.RefusalBurst < 0 || cfg.RefusalRate < 0 || cfg.MaxInFlight < 0 {
		return nil, errors.New("new witness: negative refusal burst, refusal rate or requests in flight")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Witness{cfg: cfg, log: lg.With("component", "witness"),
		limits: newPartnerLimits(cfg.RefusalBurst, cfg.RefusalRate, cfg.MaxInFlight)}, nil
}

// Handle serves one ProtoWitness stream from an admitted peer: one request
// frame, one answer frame. Bytes that do not frame are answered by a
// reset; a request that does not parse by 400. The partner limits apply
// first (WitnessConfig.MaxInFlight, RefusalBurst): a stream with no slot
// before its deadline (Timeout, or ctx's when earlier), or of an agency
// over its refusal budget, is reset unread.
func (w *Witness) Handle(ctx context.Context, from Peer, st Stream) {
	d := time.Now().Add(w.cfg.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	if err := st.SetDeadline(d); err != nil {
		_ = st.Reset()
		return
	}
	ctx, cancel := context.WithDeadline(ctx, d)
	defer cancel()
	release, ok := w.limits.acquire(ctx, from.Agency, ProtoWitness, time.Now())
	if !ok {
		_ = st.Reset()
		return
	}
	defer release()
	if ok, first := w.limits.draw(from.Agency, time.Now()); !ok {
		if first {
			w.log.Warn("partner throttled: too many refused witness requests; its streams are reset until its budget refills",
				"peer", from.ID, "partner", from.Agency)
		}
		if w.cfg.Throttled != nil {
			w.cfg.Throttled(from, ProtoWitness)
		}
		_ = st.Reset()
		return
	}
	b, err := wire.ReadFrame(wire.NewReader(st), MaxWitnessRequest)
	if err != nil {
		w.log.Warn("witness request refused", "peer", from.ID, "partner", from.Agency, "err", err)
		_ = st.Reset()
		return
	}
	a := w.Answer(ctx, from, b)
	if !a.refused {
		w.limits.refund(from.Agency, time.Now())
	}
	if err := wire.WriteFrame(st, a.Marshal()); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.CloseWrite()
}

// Answer answers one request body from a peer.
func (w *Witness) Answer(ctx context.Context, from Peer, b []byte) *WitnessAnswer {
	if origin, ok := bytes.CutPrefix(b, []byte(latestPrefix)); ok {
		o, rest, ok := bytes.Cut(origin, []byte("\n"))
		if !ok || len(rest) != 0 || len(o) == 0 {
			return w.refuse(from, WitnessBadRequest, "malformed latest request")
		}
		return w.latest(ctx, from, string(o))
	}
	r, err := ParseAddCheckpoint(b)
	if err != nil {
		return w.refuse(from, WitnessBadRequest, err.Error())
	}
	return w.AddCheckpoint(ctx, from, r)
}

func (w *Witness) refuse(from Peer, status int, why string) *WitnessAnswer {
	w.log.Warn("witness request refused", "peer", from.ID, "partner", from.Agency, "status", status, "reason", why)
	// 503 is this witness's own failure, not the partner's.
	return &WitnessAnswer{Status: status, refused: status != WitnessUnavailable}
}

// conflict answers 409 with the size last cosigned.
func conflict(size uint64) *WitnessAnswer {
	return &WitnessAnswer{Status: WitnessConflict, Body: []byte(strconv.FormatUint(size, 10) + "\n")}
}

// checkpoint is a verified checkpoint note, parsed.
type checkpoint struct {
	note *note.Note
	size uint64
	root tlog.Hash
}

// open verifies a checkpoint note with the pinned key of its origin. It
// returns the status to answer when it does not verify.
func (w *Witness) open(b []byte) (*checkpoint, int, error) {
	origin, _, ok := bytes.Cut(b, []byte("\n"))
	if !ok || len(origin) == 0 {
		return nil, WitnessBadRequest, errors.New("checkpoint has no origin line")
	}
	vkey, err := w.cfg.Logs.LogKey(string(origin))
	if err != nil {
		return nil, WitnessUnknownLog, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, WitnessUnavailable, err
	}
	n, err := note.Open(b, note.VerifierList(v))
	if err != nil {
		var unv *note.UnverifiedNoteError
		var inv *note.InvalidSignatureError
		if errors.As(err, &unv) || errors.As(err, &inv) {
			return nil, WitnessForbidden, err
		}
		return nil, WitnessBadRequest, err
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil || c.Origin != string(origin) || len(c.Hash) != tlog.HashSize || c.Size >= 1<<63 {
		return nil, WitnessBadRequest, fmt.Errorf("not a checkpoint of %s: %v", origin, err)
	}
	cp := &checkpoint{note: n, size: c.Size}
	copy(cp.root[:], c.Hash)
	return cp, 0, nil
}

// emptyRoot is the RFC 6962 root of the empty tree.
var emptyRoot = tlog.Hash(sha256.Sum256(nil))

// AddCheckpoint checks r against the state of its origin and cosigns it,
// following C2SP tlog-witness: 404 for an origin not pinned, 403 without a
// valid signature of its pinned key, 400 for an old size above the new,
// 409 (with the stored size) when the old size is not the one last
// cosigned, 422 for a proof that does not verify or the same size with
// another root, and 200 with the cosignature once the new checkpoint is
// stored. A 422 about two checkpoints both signed by the origin is a split
// view: recorded as an Alarm first.
func (w *Witness) AddCheckpoint(ctx context.Context, from Peer, r *AddCheckpoint) *WitnessAnswer {
	cp, status, err := w.open(r.Checkpoint)
	if err != nil {
		return w.refuse(from, status, err.Error())
	}
	origin := cp.note.Text[:bytes.IndexByte([]byte(cp.note.Text), '\n')]
	if r.OldSize > cp.size {
		return w.refuse(from, WitnessBadRequest, "old size above the checkpoint's size")
	}
	if cp.size == 0 && cp.root != emptyRoot {
		return w.refuse(from, WitnessUnprocessable, "empty tree with a root other than the empty hash")
	}
	storedNote, err := w.cfg.State.Latest(ctx, origin)
	if err != nil {
		return w.refuse(from, WitnessUnavailable, err.Error())
	}
	var stored *checkpoint
	if storedNote != nil {
		if stored, _, err = w.open(storedNote); err != nil {
			// The stored note no longer verifies (the partner's key
			// changed with a re-pin): start again from nothing.
			stored = nil
		}
	}
	var oldSize uint64
	if stored != nil {
		oldSize = stored.size
		if cp.size == stored.size && cp.root != stored.root {
			return w.alarm(ctx, from, "same size, another root", stored, storedNote, cp, r)
		}
	}
	if r.OldSize != oldSize {
		return conflict(oldSize)
	}
	switch {
	case oldSize == 0 && len(r.Proof) != 0:
		return w.refuse(from, WitnessUnprocessable, "a proof from the empty tree")
	case stored != nil && oldSize > 0:
		if err := tlog.CheckTree(r.Proof, int64(cp.size), cp.root, int64(oldSize), stored.root); err != nil {
			if from.Agency != originAgency(origin) {
				// Only the log's own proof is its word: anyone else
				// can send a bad proof with a good checkpoint.
				return w.refuse(from, WitnessUnprocessable, "consistency proof fails")
			}
			return w.alarm(ctx, from, "consistency proof fails", stored, storedNote, cp, r)
		}
	}
	if stored == nil || cp.size != stored.size {
		switch err := w.cfg.State.Swap(ctx, origin, storedNote, r.Checkpoint); {
		case errors.Is(err, ErrWitnessConflict):
			now, err := w.cfg.State.Latest(ctx, origin)
			if err != nil || now == nil {
				return w.refuse(from, WitnessUnavailable, "state changed and cannot be read")
			}
			c, _, err := w.open(now)
			if err != nil {
				return w.refuse(from, WitnessUnavailable, "state changed and does not verify")
			}
			return conflict(c.size)
		case err != nil:
			return w.refuse(from, WitnessUnavailable, err.Error())
		}
	}
	sigs, err := w.cosign(cp.note.Text)
	if err != nil {
		return w.refuse(from, WitnessUnavailable, err.Error())
	}
	return &WitnessAnswer{Status: WitnessOK, Body: sigs}
}

// cosign returns the witness's signature lines over a checkpoint text.
func (w *Witness) cosign(text string) ([]byte, error) {
	signed, err := note.Sign(&note.Note{Text: text}, w.cfg.Cosigner)
	if err != nil {
		return nil, fmt.Errorf("cosign: %w", err)
	}
	return signed[len(text)+1:], nil
}

// alarm records a split view and answers 422.
func (w *Witness) alarm(ctx context.Context, from Peer, why string, old *checkpoint, oldNote []byte, cp *checkpoint, r *AddCheckpoint) *WitnessAnswer {
	a := &Alarm{Origin: old.note.Text[:bytes.IndexByte([]byte(old.note.Text), '\n')], From: from, Reason: why,
		OldSize: old.size, NewSize: cp.size, OldRoot: old.root, NewRoot: cp.root,
		OldNote: oldNote, NewNote: r.Checkpoint, Proof: r.Proof}
	w.log.Error("split view: checkpoint refused", "origin", a.Origin, "peer", from.ID, "partner", from.Agency,
		"reason", why, "old_size", a.OldSize, "new_size", a.NewSize)
	if err := w.cfg.State.Alarm(ctx, a); err != nil {
		return w.refuse(from, WitnessUnavailable, "alarm not recorded: "+err.Error())
	}
	return &WitnessAnswer{Status: WitnessUnprocessable, refused: true}
}

// latest answers a gossip request from the log itself (403 for anyone
// else): the newest checkpoint of origin this witness cosigned, with a
// fresh cosignature.
func (w *Witness) latest(ctx context.Context, from Peer, origin string) *WitnessAnswer {
	if _, err := w.cfg.Logs.LogKey(origin); err != nil {
		return w.refuse(from, WitnessUnknownLog, err.Error())
	}
	if from.Agency != originAgency(origin) {
		// A partner's tree size is its activity: only the log itself
		// learns what this witness holds of it.
		return w.refuse(from, WitnessForbidden, "latest of another agency's ledger")
	}
	b, err := w.cfg.State.Latest(ctx, origin)
	if err != nil {
		return w.refuse(from, WitnessUnavailable, err.Error())
	}
	if b == nil {
		return &WitnessAnswer{Status: WitnessUnknownLog} // routine: nothing cosigned yet
	}
	cp, _, err := w.open(b)
	if err != nil {
		return &WitnessAnswer{Status: WitnessUnknownLog}
	}
	sigs, err := w.cosign(cp.note.Text)
	if err != nil {
		return w.refuse(from, WitnessUnavailable, err.Error())
	}
	return &WitnessAnswer{Status: WitnessOK, Body: append(append([]byte(nil), b...), sigs...)}
}

// originAgency returns the agency code of a ledger origin.
func originAgency(origin string) string {
	a, _ := strings.CutPrefix(origin, WitnessOriginPrefix)
	return a
}

// NoteText returns the text of a signed note, up to and including the
// newline before the blank line that starts its signatures (all of b when
// it has none).
func NoteText(b []byte) []byte {
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return b[:i+1]
	}
	return b
}

package exchange

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// Cards checks the agency cards that owners serve over sync. node
// implements it with internal/card: Decode, Verify at its clock, then either
// the card equals the pinned one or card.Replaces(pinned, next) holds, in
// which case node replaces the pin as `partner add` would.
type Cards interface {
	// Check returns the epoch keys of agency's card (binary form), with
	// their reaches, once the card verifies under the pinned agency key. An error means the card
	// must not be used: the sync fails with ErrVerify.
	Check(ctx context.Context, agency string, card []byte) ([]EpochKey, error)
}

// HandleSync serves one sync stream: wait for one of the partner's slots
// (sync refusals do not draw on the refusal budget), read the signed request,
// check peer, signature and freshness, ask the SyncAuthorizer about the
// kind and reach (a partner gets the victim and witness sets only if its
// policy lets it reach them), choose the
// segments the querier lacks, report them to the SyncAuditor, and send the
// signed head, the card and the signed segments. Refusals are answered
// with a signed denial; a malformed or oversized request resets the
// stream.
func (s *Server) HandleSync(ctx context.Context, from Peer, st Stream) {
	ctx, cancel, err := s.deadline(ctx, st)
	if err != nil {
		_ = st.Reset()
		return
	}
	defer cancel()
	log := s.log.With("peer", string(from.ID), "partner", from.Agency, "proto", ProtoSync)
	if s.cfg.Sets == nil {
		_ = st.Reset()
		return
	}
	done, ok := s.admitStream(ctx, from, ProtoSync, st, false)
	if !ok {
		return
	}
	refused := false
	defer func() { done(refused) }()
	m, ok := readRequest(st, wire.MaxSyncRequest, wire.UnmarshalSyncRequest, log, "sync")
	if !ok {
		return
	}
	log = log.With("query", hex.EncodeToString(m.ID))
	head := &wire.SyncAnswer{ID: m.ID, Owner: s.cfg.Agency, Querier: m.Querier}
	segs, reason, err := s.sync(ctx, from, m)
	if reason != "" {
		sv := &Served{Peer: from, Kind: m.Kind, Reach: m.Reach, Epoch: m.Epoch, From: uint32(min(m.Version, 1<<32-1))}
		copy(sv.ID[:], m.ID)
		if rerr := s.cfg.SyncAuditor.SyncRefused(ctx, sv, reason); rerr != nil {
			// No audit, no answer: a denial not recorded is not sent.
			reason, err = "", fmt.Errorf("record refusal %s: %w", reason, rerr)
		}
	}
	switch {
	case reason != "":
		log.Info("sync request denied", "reason", string(reason), "kind", m.Kind, "reach", m.Reach)
		head.Status, head.Reason = wire.StatusDenied, string(reason)
		refused = true
	case err != nil:
		log.Warn("sync request unavailable", "err", err)
		head.Status = wire.StatusUnavailable
	default:
		card, err := s.cfg.Sets.Card(ctx)
		if err != nil || len(card) > wire.MaxCardLen {
			log.Warn("sync request unavailable", "err", fmt.Errorf("read card: %w", err))
			head.Status = wire.StatusUnavailable
			segs = nil
			break
		}
		head.Status, head.Card, head.Segments = wire.StatusOK, card, uint64(len(segs))
	}
	head.TimeUnixMs = unixMs(s.cfg.Clock())
	if head.Signature, err = s.sign(head.SignedBytes()); err != nil {
		log.Error("sign sync answer", "err", err)
		_ = st.Reset()
		return
	}
	w := bufio.NewWriterSize(st, 64<<10)
	if err := wire.WriteFrame(w, head.Marshal()); err != nil {
		_ = st.Reset()
		return
	}
	for _, sg := range segs {
		if sg.Signature, err = s.sign(sg.SignedBytes()); err != nil {
			log.Error("sign set segment", "err", err)
			_ = st.Reset()
			return
		}
		if err := wire.WriteFrame(w, sg.Marshal()); err != nil {
			log.Warn("write set segment", "err", err)
			_ = st.Reset()
			return
		}
	}
	if err := w.Flush(); err != nil {
		log.Warn("write sync answer", "err", err)
		_ = st.Reset()
		return
	}
	_ = st.CloseWrite()
}

// sync checks a sync request and returns the segments to send (unsigned),
// a denial reason, or an error for "unavailable".
func (s *Server) sync(ctx context.Context, from Peer, m *wire.SyncRequest) ([]*wire.Segment, Reason, error) {
	if from.Agency != m.Querier {
		return nil, ReasonWrongPeer, nil
	}
	key, err := s.cfg.Keys.AgencyKey(m.Querier)
	if err != nil || len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, m.SignedBytes(), m.Signature) {
		return nil, ReasonBadSignature, nil
	}
	if m.Owner != s.cfg.Agency {
		return nil, ReasonWrongResponder, nil
	}
	if !fresh(fromUnixMs(m.TimeUnixMs), s.cfg.Clock(), s.cfg.MaxSkew) {
		return nil, ReasonClockSkew, nil
	}
	if m.Kind == "" || !ValidReach(m.Reach) || m.Base > 1<<32-1 || m.Version > 1<<32-1 || (m.Version != 0 && m.Version < m.Base) {
		return nil, ReasonBadRequest, nil
	}
	if err := s.cfg.SyncAuthorizer.AllowSync(ctx, from, m.Kind, m.Reach); err != nil {
		var d *DeniedError
		if errors.As(err, &d) {
			r := d.Reason
			if !r.Valid() {
				r = ReasonNotPermitted
			}
			return nil, r, nil
		}
		return nil, "", fmt.Errorf("authorize sync: %w", err)
	}
	h, err := s.cfg.Sets.Holding(ctx, m.Kind, m.Epoch, m.Reach)
	if errors.Is(err, ErrNoSet) {
		return nil, ReasonUnknownEpoch, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read set: %w", err)
	}
	if h.Base == 0 || len(h.Segments) == 0 || len(h.Segments) > wire.MaxSegments {
		return nil, "", fmt.Errorf("read set: holding of base version %d with %d segments", h.Base, len(h.Segments))
	}
	// The querier holds base m.Base up to m.Version: send what follows, or
	// everything when it holds another base (or nothing). A querier ahead of
	// this replica gets nothing new.
	first := 0
	if m.Version != 0 && uint64(h.Base) == m.Base {
		first = min(int(m.Version-m.Base)+1, len(h.Segments))
	}
	sv := &Served{Peer: from, Kind: m.Kind, Reach: m.Reach, Epoch: m.Epoch, Base: h.Base, From: uint32(m.Version)}
	copy(sv.ID[:], m.ID)
	var segs []*wire.Segment
	for i := first; i < len(h.Segments); i++ {
		data := h.Segments[i]
		if len(data) == 0 || len(data) > wire.MaxSegment-1<<10 {
			return nil, "", fmt.Errorf("read set: segment %d of %d bytes", i, len(data))
		}
		sum := sha256.Sum256(data)
		v := h.Base + uint32(i)
		segs = append(segs, &wire.Segment{Owner: s.cfg.Agency, Kind: m.Kind, Reach: m.Reach, Epoch: m.Epoch,
			Base: uint64(h.Base), Version: uint64(v), SHA256: sum[:], Data: data})
		sv.Digests = append(sv.Digests, sum)
		sv.Bytes += len(data)
		sv.To = v
	}
	sv.Segments = len(segs)
	if err := s.cfg.SyncAuditor.Synced(ctx, sv); err != nil {
		return nil, "", fmt.Errorf("audit sync: %w", err)
	}
	return segs, "", nil
}

// SyncQuery asks an owner for its set of (Kind, Epoch, Reach).
type SyncQuery struct {
	Owner string // the owner's agency code
	Kind  string
	Reach string // one of Reaches; required
	Epoch uint64
	// Have is the querier's copy of the set (nil: none). Verified deltas
	// are applied to it in place; when the owner sends a new base, the
	// result holds a new Set and Have is left alone.
	Have *psi.Set
}

// Segment is one verified part of an owner's set, kept by the querier (in
// badger) so that it can rebuild the set.
type Segment struct {
	Base    uint32
	Version uint32
	SHA256  [32]byte
	Data    []byte // psi.EncodedSet when Version == Base, else psi.Delta
}

// Synced is the outcome of a verified sync.
type Synced struct {
	ID [16]byte
	// Card is the owner's card (binary), checked by Cards.
	Card []byte
	// Set is the querier's copy, up to date with what the owner sent: Have
	// with the new deltas, or a new set from a new base.
	Set *psi.Set
	// Key is the epoch key of a base set received in this sync, one the
	// owner's card lists; nil when only deltas came (psi.Set.Apply checks
	// that they carry the key of Have's base).
	Key *psi.PublicKey
	// Segments are the segments received, in order (empty when Have was
	// already current).
	Segments []Segment
}

// Sync fetches what the owner has of (Kind, Epoch, Reach) beyond q.Have
// over a new ProtoSync stream. It verifies the head's and every segment's
// signature under the owner's pinned agency key, the card through Cards,
// each segment's digest and reach, that the set's epoch key is the one the
// card lists for (Kind, Epoch, Reach), and that each delta extends the set. It fails with a
// *DeniedError when the owner denied, ErrUnavailable when it or the stream
// failed, and ErrVerify when anything does not verify (nothing of that
// segment or later ones is applied).
func (c *Client) Sync(ctx context.Context, o Opener, peer PeerID, q SyncQuery) (*Synced, error) {
	if c.cfg.Cards == nil {
		return nil, errors.New("sync: the client has no card checker")
	}
	if !ValidReach(q.Reach) {
		return nil, fmt.Errorf("sync %s %s: reach %q: want one of %v", q.Owner, q.Kind, q.Reach, Reaches)
	}
	pub, err := c.cfg.Keys.AgencyKey(q.Owner)
	if err != nil {
		return nil, fmt.Errorf("sync %s %s: %w", q.Owner, q.Kind, err)
	}
	m := &wire.SyncRequest{TimeUnixMs: unixMs(c.cfg.Clock()), Querier: c.cfg.Agency, Owner: q.Owner,
		Kind: q.Kind, Reach: q.Reach, Epoch: q.Epoch, ID: make([]byte, 16)}
	if _, err := io.ReadFull(c.cfg.Rand, m.ID); err != nil {
		return nil, fmt.Errorf("sync %s %s: draw request ID: %w", q.Owner, q.Kind, err)
	}
	if q.Have != nil {
		m.Base, m.Version = uint64(q.Have.Base()), uint64(q.Have.Version())
	}
	if m.Signature, err = c.sign(m.SignedBytes()); err != nil {
		return nil, fmt.Errorf("sync %s %s: %w", q.Owner, q.Kind, err)
	}
	out, err := c.sync(ctx, o, peer, q, m, pub)
	if err != nil {
		return nil, fmt.Errorf("sync %s %s: %w", q.Owner, q.Kind, err)
	}
	return out, nil
}

func (c *Client) sync(ctx context.Context, o Opener, peer PeerID, q SyncQuery, m *wire.SyncRequest, pub ed25519.PublicKey) (*Synced, error) {
	st, err := c.open(ctx, o, peer, ProtoSync)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if err := wire.WriteFrame(st, m.Marshal()); err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r := wire.NewReader(st)
	read := func(limit int) ([]byte, error) {
		b, err := wire.ReadFrame(r, limit)
		if errors.Is(err, wire.ErrMalformed) {
			_ = st.Reset()
			return nil, fmt.Errorf("%w: %w", ErrVerify, err)
		}
		if err != nil {
			_ = st.Reset()
			return nil, fmt.Errorf("read answer: %w: %w", ErrUnavailable, err)
		}
		return b, nil
	}
	b, err := read(wire.MaxSyncAnswer)
	if err != nil {
		return nil, err
	}
	h, err := wire.UnmarshalSyncAnswer(b)
	if err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if !ed25519.Verify(pub, h.SignedBytes(), h.Signature) {
		_ = st.Reset()
		return nil, fmt.Errorf("answer signature: %w", ErrVerify)
	}
	if !bytes.Equal(h.ID, m.ID) || h.Owner != q.Owner || h.Querier != c.cfg.Agency {
		_ = st.Reset()
		return nil, fmt.Errorf("answer to another request: %w", ErrVerify)
	}
	switch h.Status {
	case wire.StatusDenied:
		if !Reason(h.Reason).Valid() {
			return nil, fmt.Errorf("unknown denial reason: %w", ErrVerify)
		}
		return nil, &DeniedError{Agency: q.Owner, Reason: Reason(h.Reason), Time: fromUnixMs(h.TimeUnixMs)}
	case wire.StatusUnavailable:
		return nil, ErrUnavailable
	}
	keys, err := c.cfg.Cards.Check(ctx, q.Owner, h.Card)
	if err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("card: %w: %w", ErrVerify, err)
	}
	out := &Synced{Card: h.Card, Set: q.Have}
	copy(out.ID[:], m.ID)
	for i := uint64(0); i < h.Segments; i++ {
		b, err := read(wire.MaxSegment)
		if err != nil {
			return nil, err
		}
		sg, err := wire.UnmarshalSegment(b)
		if err != nil {
			_ = st.Reset()
			return nil, fmt.Errorf("%w: %w", ErrVerify, err)
		}
		seg, err := c.apply(out, q, pub, keys, sg)
		if err != nil {
			_ = st.Reset()
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		out.Segments = append(out.Segments, seg)
	}
	if out.Set == nil {
		return nil, fmt.Errorf("no set sent: %w", ErrVerify)
	}
	return out, nil
}

// apply verifies one segment and adds it to out.Set.
func (c *Client) apply(out *Synced, q SyncQuery, pub ed25519.PublicKey, keys []EpochKey, sg *wire.Segment) (Segment, error) {
	if !ed25519.Verify(pub, sg.SignedBytes(), sg.Signature) {
		return Segment{}, fmt.Errorf("set signature: %w", ErrVerify)
	}
	sum := sha256.Sum256(sg.Data)
	if !bytes.Equal(sum[:], sg.SHA256) {
		return Segment{}, fmt.Errorf("set digest: %w", ErrVerify)
	}
	if sg.Owner != q.Owner || sg.Kind != q.Kind || sg.Reach != q.Reach || sg.Epoch != q.Epoch || sg.Base == 0 ||
		sg.Base > sg.Version || sg.Version > 1<<32-1 {
		return Segment{}, fmt.Errorf("segment of another set: %w", ErrVerify)
	}
	seg := Segment{Base: uint32(sg.Base), Version: uint32(sg.Version), SHA256: sum, Data: sg.Data}
	var key *psi.PublicKey
	if sg.Base == sg.Version {
		es, err := psi.UnmarshalEncodedSet(sg.Data)
		if err != nil {
			return Segment{}, fmt.Errorf("%w: %w", ErrVerify, err)
		}
		if es.Kind != q.Kind || es.Reach != q.Reach || es.Epoch != q.Epoch || uint64(es.Version) != sg.Version {
			return Segment{}, fmt.Errorf("set differs from its signed header: %w", ErrVerify)
		}
		if key = es.Key(); !listed(keys, q.Kind, q.Epoch, q.Reach, key) {
			return Segment{}, fmt.Errorf("set epoch key not on the owner's card: %w", ErrVerify)
		}
		set, err := psi.NewSet(es)
		if err != nil {
			return Segment{}, fmt.Errorf("%w: %w", ErrVerify, err)
		}
		out.Set, out.Key = set, key
		return seg, nil
	}
	if out.Set == nil {
		return Segment{}, fmt.Errorf("delta without a base: %w", ErrVerify)
	}
	d, err := psi.UnmarshalDelta(sg.Data)
	if err != nil {
		return Segment{}, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if d.Kind != q.Kind || d.Reach != q.Reach || d.Epoch != q.Epoch || uint64(d.Version) != sg.Version || uint64(d.Base) != sg.Base {
		return Segment{}, fmt.Errorf("delta differs from its signed header: %w", ErrVerify)
	}
	// Apply checks that the delta carries the set's key (checked against
	// the card when its base arrived), its base and the next version.
	if err := out.Set.Apply(d); err != nil {
		return Segment{}, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	return seg, nil
}

// listed reports whether key is the card's epoch key of (kind, epoch, reach).
func listed(keys []EpochKey, kind string, epoch uint64, reach string, key *psi.PublicKey) bool {
	if key == nil {
		return false
	}
	kb, err := key.MarshalBinary()
	if err != nil {
		return false
	}
	for _, k := range keys {
		if k.Kind == kind && k.Epoch == epoch && k.Reach == reach && bytes.Equal(k.Key, kb) {
			return true
		}
	}
	return false
}

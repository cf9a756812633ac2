package exchange

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/psi"
)

// query blinds inputs for DE and returns the secret query and the Query to
// send.
func (w *world) query(inputs [][]byte) (*psi.Query, Query) {
	w.t.Helper()
	qy, req, err := w.querier().Blind(inputs, rand.Reader)
	if err != nil {
		w.t.Fatal(err)
	}
	return qy, Query{Responder: "DE", Kind: kind, Epoch: epoch, Mode: ModeEnforcement,
		Reaches: []string{ReachOpen}, Keys: w.keys(ReachOpen), CaseRef: "case-7",
		LegalBasis: "art. 12", Offence: "thb", Purpose: "trace", Eval: req}
}

// holderSet decodes DE's base set as FR would hold it after a sync.
func (w *world) holderSet() *psi.Set {
	w.t.Helper()
	return w.reachSet(ReachOpen)
}

// reachSet decodes DE's base set of a reach as FR would hold it.
func (w *world) reachSet(reach string) *psi.Set {
	w.t.Helper()
	h, _ := w.sets.Holding(context.Background(), kind, epoch, reach)
	es, err := psi.UnmarshalEncodedSet(h.Segments[0])
	if err != nil {
		w.t.Fatal(err)
	}
	s, err := psi.NewSet(es)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// mustMatch runs a whole match and returns the hit indexes.
func (w *world) mustMatch(inputs [][]byte) []int {
	w.t.Helper()
	qy, q := w.query(inputs)
	a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
	if err != nil {
		w.t.Fatalf("Match: %v", err)
	}
	hits, err := qy.Match(a.Results[0].Evaluation, w.holderSet())
	if err != nil {
		w.t.Fatalf("psi Match: %v", err)
	}
	return hits
}

func TestMatchPlantedHits(t *testing.T) {
	w := newWorld(t, 2000, nil)
	// Inputs 0-9 are not held; 10, 12, 14 are phones 500, 1500 and 1999.
	inputs := phones(100000, 110000)[:10]
	inputs = append(inputs, phone(500), phone(100010), phone(1500), phone(100011), phone(1999))
	qy, q := w.query(inputs)
	q.Urgent = true
	a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	if len(a.Results) != 1 || a.Results[0].Reach != ReachOpen || a.Results[0].SetVersion != 1 || !a.Time.Equal(now) {
		t.Fatalf("answer results %+v, time %v; want one of reach open, set version 1, %v", a.Results, a.Time, now)
	}
	hits, err := qy.Match(a.Results[0].Evaluation, w.holderSet())
	if err != nil {
		t.Fatalf("psi Match: %v", err)
	}
	if want := []int{10, 12, 14}; !slices.Equal(hits, want) {
		t.Errorf("hits = %v; want %v", hits, want)
	}
	if n := w.ev.calls.Load(); n != 1 {
		t.Errorf("Evaluate called %d times; want 1", n)
	}
	if len(w.adm.admits) != 1 {
		t.Fatalf("Admit called %d times; want 1", len(w.adm.admits))
	}
	in := w.adm.admits[0]
	eb, _ := q.Eval.MarshalBinary()
	want := Inbound{Peer: peerFR, ID: a.ID, Time: now, Querier: "FR", Responder: "DE", Kind: kind,
		Epoch: epoch, Mode: ModeEnforcement, Reaches: []string{ReachOpen}, PaddedSize: 16, CaseRef: "case-7",
		LegalBasis: "art. 12", Offence: "thb", Purpose: "trace", Urgent: true, BatchSHA256: sha256.Sum256(eb),
		SignatureSHA256: in.SignatureSHA256}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("Admit got %+v; want %+v", in, want)
	}
	if in.SignatureSHA256 == ([32]byte{}) {
		t.Error("Admit got no signature digest")
	}
}

// rawMatch sends a signed request built by build (then mutated) and returns
// the decoded answer, or the read error when the stream was reset.
func (w *world) rawMatch(from Peer, m *wire.MatchRequest, signer ed25519.PrivateKey) (*wire.MatchAnswer, error) {
	w.t.Helper()
	if signer != nil {
		m.Signature = ed25519.Sign(signer, m.SignedBytes())
	}
	return w.rawFrame(from, m.Marshal())
}

func (w *world) rawFrame(from Peer, frame []byte) (*wire.MatchAnswer, error) {
	w.t.Helper()
	o := newPipeOpener(w.t, w.server, from)
	st, _ := o.Open(context.Background(), "12D3KooWDE", ProtoMatch)
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _ = wire.WriteFrame(st, frame) }()
	b, err := wire.ReadFrame(wire.NewReader(st), wire.MaxMatchAnswer)
	if err != nil {
		return nil, err
	}
	a, err := wire.UnmarshalMatchAnswer(b)
	if err != nil {
		w.t.Fatalf("server answer does not decode: %v", err)
	}
	if !ed25519.Verify(keyDE.Public().(ed25519.PublicKey), a.SignedBytes(), a.Signature) {
		w.t.Fatal("server answer is not signed by DE")
	}
	return a, nil
}

// request returns a well-formed request for n phones (unsigned).
func (w *world) request(n int) *wire.MatchRequest {
	w.t.Helper()
	_, q := w.query(phones(0, n))
	eb, _ := q.Eval.MarshalBinary()
	sum := sha256.Sum256(eb)
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &wire.MatchRequest{ID: id, TimeUnixMs: uint64(now.UnixMilli()), Querier: "FR", Responder: "DE",
		Kind: kind, Epoch: epoch, PaddedSize: uint64(q.Eval.Len()), CaseRef: "c", LegalBasis: "b",
		Offence: "thb", BatchSHA256: sum[:], Mode: ModeEnforcement, Reaches: []string{ReachOpen}, EvalRequest: eb}
}

// withBatch replaces the batch and its digest.
func withBatch(m *wire.MatchRequest, eb []byte) {
	sum := sha256.Sum256(eb)
	m.EvalRequest, m.BatchSHA256 = eb, sum[:]
}

func TestMatchRefused(t *testing.T) {
	w := newWorld(t, 100, func(c *ServerConfig) { c.MaxBatch = 256 })
	tests := []struct {
		name   string
		from   Peer
		signer ed25519.PrivateKey
		mutate func(*wire.MatchRequest)
		reason Reason // "" means: the stream is reset, no answer
	}{
		{"stale timestamp", peerFR, keyFR, func(m *wire.MatchRequest) { m.TimeUnixMs -= uint64(3 * time.Minute / time.Millisecond) }, ReasonClockSkew},
		{"future timestamp", peerFR, keyFR, func(m *wire.MatchRequest) { m.TimeUnixMs += uint64(2*time.Minute/time.Millisecond) + 1 }, ReasonClockSkew},
		{"bad signature", peerFR, keyEvil, nil, ReasonBadSignature},
		{"signed by another partner", peerFR, keyGB, nil, ReasonBadSignature},
		{"peer of another agency", peerGB, keyFR, nil, ReasonWrongPeer},
		{"another responder", peerFR, keyFR, func(m *wire.MatchRequest) { m.Responder = "GB" }, ReasonWrongResponder},
		{"oversized batch", peerFR, keyFR, func(m *wire.MatchRequest) { withBatch(m, w.request(300).EvalRequest); m.PaddedSize = 512 }, ReasonTooLarge},
		{"batch digest", peerFR, keyFR, func(m *wire.MatchRequest) { m.BatchSHA256[0] ^= 1 }, ReasonBadBatch},
		{"padded size differs", peerFR, keyFR, func(m *wire.MatchRequest) { m.PaddedSize = 8 }, ReasonBadBatch},
		{"kind differs from batch", peerFR, keyFR, func(m *wire.MatchRequest) { m.Kind = "email" }, ReasonBadBatch},
		{"unknown epoch", peerFR, keyFR, func(m *wire.MatchRequest) {
			m.Epoch = 4
			eb := append([]byte(nil), m.EvalRequest...)
			eb[2+1+len(kind)+7] = 4 // the batch's epoch, u64 big-endian
			withBatch(m, eb)
		}, ReasonUnknownEpoch},
		{"identity element", peerFR, keyFR, func(m *wire.MatchRequest) {
			eb := append([]byte(nil), m.EvalRequest...)
			off := 2 + 1 + len(kind) + 8 + 4 + 4 // the first element
			clear(eb[off : off+32])
			withBatch(m, eb)
		}, ReasonBadRequest},
		{"garbage batch", peerFR, keyFR, func(m *wire.MatchRequest) { withBatch(m, []byte("not a batch")) }, ReasonBadRequest},
		{"no mode", peerFR, keyFR, func(m *wire.MatchRequest) { m.Mode = "" }, ReasonBadRequest},
		{"unknown mode", peerFR, keyFR, func(m *wire.MatchRequest) { m.Mode = "curiosity" }, ReasonBadRequest},
		{"no reach", peerFR, keyFR, func(m *wire.MatchRequest) { m.Reaches = nil }, ReasonBadRequest},
		{"unknown reach", peerFR, keyFR, func(m *wire.MatchRequest) { m.Reaches = []string{"suspect"} }, ReasonBadRequest},
		{"repeated reach", peerFR, keyFR, func(m *wire.MatchRequest) { m.Reaches = []string{ReachOpen, ReachOpen} }, ReasonBadRequest},
		{"reaches out of order", peerFR, keyFR, func(m *wire.MatchRequest) {
			m.Mode, m.Reaches = ModeSafeguarding, []string{ReachVictim, ReachOpen}
		}, ReasonBadRequest},
		{"unsigned", peerFR, nil, func(m *wire.MatchRequest) { m.Signature = nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := w.request(10)
			if tt.mutate != nil {
				tt.mutate(m)
			}
			_, refusedBefore := w.adm.counts()
			a, err := w.rawMatch(tt.from, m, tt.signer)
			if tt.reason == "" {
				if err == nil {
					t.Fatalf("answer %+v; want a reset stream", a)
				}
			} else {
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				if a.Status != wire.StatusDenied || Reason(a.Reason) != tt.reason {
					t.Fatalf("answer status %d reason %q; want denied %q", a.Status, a.Reason, tt.reason)
				}
				if tt.reason == ReasonClockSkew && a.TimeUnixMs != uint64(now.UnixMilli()) {
					t.Errorf("skew denial time %d; want the responder's %d", a.TimeUnixMs, now.UnixMilli())
				}
				if _, refused := w.adm.counts(); refused != refusedBefore+1 {
					t.Errorf("Refused called %d times; want 1", refused-refusedBefore)
				}
			}
			if n := w.ev.calls.Load(); n != 0 {
				t.Fatalf("Evaluate called %d times; want 0", n)
			}
			if admits, _ := w.adm.counts(); admits != 0 {
				t.Fatalf("Admit called %d times; want 0", admits)
			}
		})
	}
	// No audit, no answer: while refusals cannot be recorded, each of
	// them is answered "unavailable", never with a denial.
	w.adm.mu.Lock()
	w.adm.refuseErr = ErrUnavailable
	w.adm.mu.Unlock()
	for _, tt := range tests {
		if tt.reason == "" {
			continue
		}
		m := w.request(10)
		if tt.mutate != nil {
			tt.mutate(m)
		}
		a, err := w.rawMatch(tt.from, m, tt.signer)
		if err != nil || a.Status != wire.StatusUnavailable || a.Reason != "" {
			t.Errorf("%s, refusal not recorded: answer %+v, %v; want unavailable", tt.name, a, err)
		}
	}
	w.adm.mu.Lock()
	w.adm.refuseErr = nil
	w.adm.mu.Unlock()
	if hits := w.mustMatch(phones(50, 60)); len(hits) != 10 {
		t.Fatalf("after the refusals a match got %d hits; want 10", len(hits))
	}
}

func TestMatchMalformed(t *testing.T) {
	w := newWorld(t, 100, nil)
	big := make([]byte, 4)
	tests := []struct {
		name  string
		frame []byte
	}{
		{"garbage", []byte("hello, world")},
		{"empty", nil},
		{"truncated request", w.request(4).Marshal()[:40]},
		{"unknown field", append(w.request(4).Marshal(), 0x80, 0x01, 0x01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, err := w.rawFrame(peerFR, tt.frame); err == nil {
				t.Fatalf("answer %+v; want a reset stream", a)
			}
		})
	}
	t.Run("oversized frame", func(t *testing.T) {
		o := newPipeOpener(t, w.server, peerFR)
		st, _ := o.Open(context.Background(), "12D3KooWDE", ProtoMatch)
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(10 * time.Second))
		// A length prefix of 1 GiB: the server must reset without reading
		// (or allocating) the body.
		go func() { _, _ = st.Write([]byte{0x80, 0x80, 0x80, 0x80, 0x04}) }()
		if _, err := st.Read(big); err == nil {
			t.Fatal("server answered an oversized frame; want a reset stream")
		}
	})
	if n := w.ev.calls.Load(); n != 0 {
		t.Fatalf("Evaluate called %d times; want 0", n)
	}
	if hits := w.mustMatch(phones(0, 5)); len(hits) != 5 {
		t.Fatalf("after malformed streams a match got %d hits; want 5", len(hits))
	}
}

func TestMatchReplay(t *testing.T) {
	w := newWorld(t, 100, nil)
	_, q := w.query(phones(0, 4))
	q.ID = [16]byte{1, 2, 3}
	if _, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q); err != nil {
		t.Fatalf("first Match: %v", err)
	}
	// The same ID under another time and signature: the ledger's to
	// refuse (byte-identical bytes are TestMatchReplayedBytes).
	q.Time = now.Add(time.Second)
	_, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
	var d *DeniedError
	if !errors.As(err, &d) || d.Reason != ReasonReplay || d.Agency != "DE" {
		t.Fatalf("replayed Match = %v; want a replay denial by DE", err)
	}
	if len(w.adm.admits) != 2 || w.adm.admits[1].ID != q.ID {
		t.Fatalf("Admit saw %d requests; want the replayed ID passed twice", len(w.adm.admits))
	}
	if n := w.ev.calls.Load(); n != 1 {
		t.Fatalf("Evaluate called %d times; want 1", n)
	}
}

// TestMatchReplayedBytes sends one signed request twice to one server
// whose Admitter, as the ledger does, treats byte-identical requests as a
// retry of one command (admitted again, the budget reserved once): the
// server evaluates it once and refuses the copy as a replay, recorded.
func TestMatchReplayedBytes(t *testing.T) {
	w := newWorld(t, 100, nil)
	w.adm.retries = true
	m := w.request(4)
	if a, err := w.rawMatch(peerFR, m, keyFR); err != nil || a.Status != wire.StatusOK {
		t.Fatalf("first request: %v, %+v; want ok", err, a)
	}
	for range 3 {
		a, err := w.rawMatch(peerFR, m, nil)
		if err != nil || a.Status != wire.StatusDenied || Reason(a.Reason) != ReasonReplay {
			t.Fatalf("the same bytes again: %v, %+v; want a replay denial", err, a)
		}
	}
	if n := w.ev.calls.Load(); n != 1 {
		t.Errorf("Evaluate called %d times; want 1", n)
	}
	if _, refused := w.adm.counts(); refused != 3 {
		t.Errorf("Refused called %d times; want 3", refused)
	}
	// Another request, and the same ID under a new signature, still reach
	// the Admitter.
	if a, err := w.rawMatch(peerFR, w.request(4), keyFR); err != nil || a.Status != wire.StatusOK {
		t.Fatalf("a new request: %v, %+v; want ok", err, a)
	}
}

func TestMatchAdmitter(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		reason      Reason
		unavailable bool
	}{
		{"no quorum", errors.New("admit: ledger has no quorum: " + ErrUnavailable.Error()), "", true},
		{"wrapped unavailable", errors.Join(ErrUnavailable), "", true},
		{"over budget", Deny(ReasonPartnerBudget), ReasonPartnerBudget, false},
		{"key exhausted", Deny(ReasonKeyExhausted), ReasonKeyExhausted, false},
		{"reason outside the list", Deny("secret_reason"), ReasonNotPermitted, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 100, nil)
			w.adm.err = tt.err
			_, q := w.query(phones(0, 4))
			_, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
			var d *DeniedError
			switch {
			case tt.unavailable:
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Match = %v; want ErrUnavailable", err)
				}
			case !errors.As(err, &d) || d.Reason != tt.reason:
				t.Fatalf("Match = %v; want denial %q", err, tt.reason)
			}
			if n := w.ev.calls.Load(); n != 0 {
				t.Fatalf("Evaluate called %d times; want 0", n)
			}
		})
	}
}

func TestMatchClient(t *testing.T) {
	t.Run("stale client clock", func(t *testing.T) {
		w := newWorld(t, 100, nil)
		w.client = newClient(t, keyFR, func() time.Time { return now.Add(-5 * time.Minute) })
		_, q := w.query(phones(0, 4))
		_, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
		var d *DeniedError
		if !errors.As(err, &d) || d.Reason != ReasonClockSkew || !d.Time.Equal(now) {
			t.Fatalf("Match = %v; want clock_skew stating %v", err, now)
		}
	})
	t.Run("answer not signed by the pinned key", func(t *testing.T) {
		w := newWorld(t, 100, func(c *ServerConfig) { c.Signer = keyEvil })
		_, q := w.query(phones(0, 4))
		if _, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q); !errors.Is(err, ErrVerify) {
			t.Fatalf("Match = %v; want ErrVerify", err)
		}
	})
	t.Run("tampered answer", func(t *testing.T) {
		w := newWorld(t, 100, nil)
		w.opener.wrap = func(s Stream) Stream { return &tamper{Stream: s, at: 200} }
		_, q := w.query(phones(0, 4))
		if _, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q); !errors.Is(err, ErrVerify) {
			t.Fatalf("Match = %v; want ErrVerify", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		w := newWorld(t, 100, nil)
		_, q := w.query(phones(0, 4))
		if _, err := w.client.Match(context.Background(), errOpener{}, "12D3KooWDE", q); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Match = %v; want ErrUnavailable", err)
		}
	})
	t.Run("server times out", func(t *testing.T) {
		w := newWorld(t, 100, func(c *ServerConfig) { c.Timeout = 50 * time.Millisecond })
		o := newPipeOpener(t, w.server, peerFR)
		st, _ := o.Open(context.Background(), "12D3KooWDE", ProtoMatch)
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(10 * time.Second))
		// Send nothing: the server's deadline ends the stream.
		if _, err := st.Read(make([]byte, 1)); err == nil {
			t.Fatal("server answered a silent stream")
		}
	})
	t.Run("context ends", func(t *testing.T) {
		w := newWorld(t, 100, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, q := w.query(phones(0, 4))
		if _, err := w.client.Match(ctx, w.opener, "12D3KooWDE", q); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Match = %v; want ErrUnavailable", err)
		}
	})
}

// tamper flips one byte of what is read at offset at.
type tamper struct {
	Stream
	at, off int
}

func (t *tamper) Read(p []byte) (int, error) {
	n, err := t.Stream.Read(p)
	if t.at >= t.off && t.at < t.off+n {
		p[t.at-t.off] ^= 0x01
	}
	t.off += n
	return n, err
}

// recorder keeps every byte read from and written to a stream.
type recorder struct {
	Stream
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.Stream.Read(p)
	r.mu.Lock()
	r.buf.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.buf.Write(p)
	r.mu.Unlock()
	return r.Stream.Write(p)
}

// No identifier of the query or of the holdings, raw, framed or hashed,
// crosses the wire in a match or a sync (DESIGN.md, invariant 1).
func TestNoIdentifierOnTheWire(t *testing.T) {
	w := newWorld(t, 300, nil)
	var mu sync.Mutex
	var buf bytes.Buffer
	w.opener.wrap = func(s Stream) Stream { return recorder{Stream: s, mu: &mu, buf: &buf} }
	synced, err := w.sync(w.opener, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hits := w.hitsIn(synced.Set, phones(250, 350)); len(hits) != 50 {
		t.Fatalf("%d hits; want 50", len(hits))
	}
	seen := buf.Bytes()
	if len(seen) < 10000 {
		t.Fatalf("recorded only %d bytes", len(seen))
	}
	for i := 0; i < 350; i++ {
		canon := fmt.Sprintf("+4915%09d", i)
		framed := phone(i)
		h1, h2 := sha256.Sum256([]byte(canon)), sha256.Sum256(framed)
		for _, needle := range [][]byte{[]byte(canon), []byte(canon[1:]), framed, h1[:], h2[:]} {
			if bytes.Contains(seen, needle) {
				t.Fatalf("identifier %d (or its hash) found on the wire", i)
			}
		}
	}
}

// TestMatchPolicyBeforeSet: a partner the policy refuses a kind learns
// that, and not whether a set of that kind and epoch exists; nothing is
// admitted or evaluated, and the refusal is recorded once (by the
// admitter).
func TestMatchPolicyBeforeSet(t *testing.T) {
	w := newWorld(t, 100, nil)
	w.adm.err = Deny(ReasonKindNotAllowed)
	for _, tt := range []struct {
		name   string
		mutate func(*wire.MatchRequest)
	}{
		{"held set", nil},
		{"no set", func(m *wire.MatchRequest) {
			m.Epoch = 4
			eb := append([]byte(nil), m.EvalRequest...)
			eb[2+1+len(kind)+7] = 4 // the batch's epoch, u64 big-endian
			withBatch(m, eb)
		}},
	} {
		m := w.request(10)
		if tt.mutate != nil {
			tt.mutate(m)
		}
		_, refusedBefore := w.adm.counts()
		a, err := w.rawMatch(peerFR, m, keyFR)
		if err != nil {
			t.Fatalf("%s: no answer: %v", tt.name, err)
		}
		if a.Status != wire.StatusDenied || Reason(a.Reason) != ReasonKindNotAllowed {
			t.Errorf("%s: answer status %d reason %q; want denied %q", tt.name, a.Status, a.Reason, ReasonKindNotAllowed)
		}
		if _, refused := w.adm.counts(); refused != refusedBefore {
			t.Errorf("%s: Refused called %d times besides the admitter's own record; want 0", tt.name, refused-refusedBefore)
		}
	}
	if n := w.ev.calls.Load(); n != 0 {
		t.Errorf("Evaluate called %d times; want 0", n)
	}
}

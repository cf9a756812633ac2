package exchange

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/wire"
)

// throttles counts the streams a server throttled, per agency.
type throttles struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *throttles) hook(p Peer, proto string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[p.Agency+" "+proto]++
}

func (c *throttles) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// TestRefusalsThrottled floods the server with refused match requests from
// FR: past its refusal burst every FR match stream is reset unread, nothing
// more is recorded and each reset is counted, while GB is served as before.
func TestRefusalsThrottled(t *testing.T) {
	var th throttles
	w := newWorld(t, 50, func(c *ServerConfig) {
		c.RefusalBurst, c.RefusalRate, c.Throttled = 3, 1e-9, th.hook
	})
	var denied, reset int
	for range 10 {
		a, err := w.rawMatch(peerFR, w.request(4), keyEvil)
		switch {
		case err != nil:
			reset++
		case a.Status == wire.StatusDenied && Reason(a.Reason) == ReasonBadSignature:
			denied++
		default:
			t.Fatalf("answer %d %q; want a bad_signature denial or a reset", a.Status, a.Reason)
		}
	}
	if _, refused := w.adm.counts(); denied != 3 || reset != 7 || refused != 3 {
		t.Errorf("10 bad signatures: %d denied, %d reset, %d recorded; want 3, 7, 3", denied, reset, refused)
	}
	if n := th.get("FR " + ProtoMatch); n != 7 {
		t.Errorf("Throttled called %d times for FR; want 7", n)
	}

	// An Admitter's denials count too; the partner that did nothing wrong
	// is served.
	gb := func() *wire.MatchRequest {
		m := w.request(4)
		m.Querier = "GB"
		return m
	}
	if a, err := w.rawMatch(peerGB, gb(), keyGB); err != nil || a.Status != wire.StatusOK {
		t.Fatalf("GB's request during FR's flood: %v, %+v; want ok", err, a)
	}
	w.adm.mu.Lock()
	w.adm.err = Deny(ReasonPartnerBudget)
	w.adm.mu.Unlock()
	for range 3 {
		if a, err := w.rawMatch(peerGB, gb(), keyGB); err != nil || Reason(a.Reason) != ReasonPartnerBudget {
			t.Fatalf("GB over budget: %v, %+v; want partner_budget", err, a)
		}
	}
	if _, err := w.rawMatch(peerGB, gb(), keyGB); err == nil {
		t.Fatal("GB's fourth denial in a row was answered; want a reset")
	}

	// Sync refusals are routine for a partner's sync loop and the node
	// records one per kind and reason: FR's syncs are still answered.
	for range 5 {
		if a, err := w.rawSync(peerFR, w.syncRequest("phone"), keyEvil); err != nil || Reason(a.Reason) != ReasonBadSignature {
			t.Fatalf("FR's sync while its matches are throttled: %v, %+v; want a bad_signature denial", err, a)
		}
	}
	if n := th.get("FR " + ProtoSync); n != 0 {
		t.Errorf("Throttled called %d times for FR's sync; want 0", n)
	}
}

// TestRefusalBudgetRefills: a throttled partner is served again once its
// budget has refilled, at the server's clock.
func TestRefusalBudgetRefills(t *testing.T) {
	var mu sync.Mutex
	at := now
	w := newWorld(t, 50, func(c *ServerConfig) {
		c.RefusalBurst, c.RefusalRate = 1, 1
		c.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
	})
	if a, err := w.rawMatch(peerFR, w.request(4), keyEvil); err != nil || a.Status != wire.StatusDenied {
		t.Fatalf("first bad signature: %v; want a denial", err)
	}
	if _, err := w.rawMatch(peerFR, w.request(4), keyFR); err == nil {
		t.Fatal("request of a throttled partner answered; want a reset")
	}
	mu.Lock()
	at = at.Add(1500 * time.Millisecond)
	mu.Unlock()
	if a, err := w.rawMatch(peerFR, w.request(4), keyFR); err != nil || a.Status != wire.StatusOK {
		t.Fatalf("request after the refill: %v, %+v; want ok", err, a)
	}
}

// slowStream counts the streams the server has begun to read.
type slowStream struct {
	Stream
	read *atomic.Int32
	once sync.Once
}

func (s *slowStream) Read(p []byte) (int, error) {
	s.once.Do(func() { s.read.Add(1) })
	return s.Stream.Read(p)
}

// TestInFlightPerPartner opens more match streams from FR than the server
// reads at once, each stalled inside its frame: only MaxInFlight are read,
// the others wait for a slot, and GB is read at once.
func TestInFlightPerPartner(t *testing.T) {
	w := newWorld(t, 50, func(c *ServerConfig) { c.MaxInFlight = 2; c.Timeout = 5 * time.Second })
	var read atomic.Int32
	var wg sync.WaitGroup
	var ends []Stream
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		for _, a := range ends {
			_ = a.Close()
		}
		wg.Wait()
	}()
	open := func(from Peer) Stream {
		a, b := pipePair()
		ends = append(ends, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &slowStream{Stream: b, read: &read}
			w.server.Handle(ctx, from, ProtoMatch, st)
			_ = b.Close()
		}()
		go func() { _, _ = a.Write(frameHeaderOf(1 << 20)) }()
		return a
	}
	for range 6 {
		open(peerFR)
	}
	waitFor(t, "two of FR's streams read", func() bool { return read.Load() == 2 })
	// The others stay unread while the two stall.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := read.Load(); n > 2 {
			t.Fatalf("%d of FR's streams read at once; want 2", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	open(peerGB)
	waitFor(t, "GB's stream read", func() bool { return read.Load() == 3 })
}

// syncRequest returns FR's unsigned sync request of kind k.
func (w *world) syncRequest(k string) *wire.SyncRequest {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &wire.SyncRequest{ID: id, TimeUnixMs: uint64(now.UnixMilli()), Querier: "FR", Owner: "DE", Kind: k, Epoch: epoch}
}

// rawSync signs m with signer and sends it from peer; it returns the
// answer's head, or the error of a reset stream.
func (w *world) rawSync(from Peer, m *wire.SyncRequest, signer ed25519.PrivateKey) (*wire.SyncAnswer, error) {
	w.t.Helper()
	m.Signature = ed25519.Sign(signer, m.SignedBytes())
	o := newPipeOpener(w.t, w.server, from)
	st, _ := o.Open(context.Background(), "12D3KooWDE", ProtoSync)
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _ = wire.WriteFrame(st, m.Marshal()) }()
	b, err := wire.ReadFrame(wire.NewReader(st), wire.MaxSyncAnswer)
	if err != nil {
		return nil, err
	}
	return wire.UnmarshalSyncAnswer(b)
}

func frameHeaderOf(n int) []byte {
	var b []byte
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ io.Reader = (*slowStream)(nil)

// TestEvaluatedBounded: the memory of evaluated requests forgets those a
// copy of which would be stale, and never holds more than its maximum.
func TestEvaluatedBounded(t *testing.T) {
	e := newEvaluated(time.Minute)
	e.max = 8
	var last [32]byte
	for i := range 100 {
		var sig [32]byte
		sig[0], sig[1] = byte(i), byte(i>>8)
		at := now.Add(time.Duration(i) * time.Second)
		if !e.add(sig, at, at) {
			t.Fatalf("add(%d) = false; want true", i)
		}
		last = sig
		if len(e.m) > e.max {
			t.Fatalf("after %d adds %d remembered; want at most %d", i+1, len(e.m), e.max)
		}
	}
	if e.add(last, now, now.Add(100*time.Second)) {
		t.Error("the newest request added again; want a replay")
	}
	e.forget(last)
	if !e.add(last, now, now.Add(100*time.Second)) {
		t.Error("a forgotten request refused; want it added")
	}
}

package exchange

import (
	"context"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/wire"
)

// fuzzWorld is shared by the fuzz targets: building it precomputes a set.
var fuzzWorld *world

func getFuzzWorld(t testing.TB) *world {
	if fuzzWorld == nil {
		// Never throttled: every input reaches the checks.
		fuzzWorld = newWorld(t, 50, func(c *ServerConfig) { c.RefusalBurst = 1 << 30 })
	}
	return fuzzWorld
}

// The server reads any bytes from a partner without panicking and never
// evaluates or admits anything unsigned.
func FuzzHandleMatch(f *testing.F) {
	w := getFuzzWorld(f)
	f.Add(w.request(4).Marshal())
	f.Add([]byte{0x0a, 0x10})
	f.Fuzz(func(t *testing.T, frame []byte) {
		o := &pipeOpener{server: w.server, from: peerFR}
		st, _ := o.Open(context.Background(), "12D3KooWDE", ProtoMatch)
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _ = wire.WriteFrame(st, frame) }()
		_, _ = wire.ReadFrame(wire.NewReader(st), wire.MaxMatchAnswer)
		_ = st.Close()
		o.wg.Wait()
		if n := w.ev.calls.Load(); n != 0 {
			t.Fatalf("Evaluate called %d times on unsigned input", n)
		}
	})
}

// The sync server reads any bytes without panicking and serves nothing
// unsigned.
func FuzzHandleSync(f *testing.F) {
	w := getFuzzWorld(f)
	f.Add([]byte{0x0a, 0x10})
	f.Add((&wire.SyncRequest{ID: make([]byte, 16), Querier: "FR", Owner: "DE", Kind: kind, Epoch: epoch, Signature: make([]byte, 64)}).Marshal())
	f.Fuzz(func(t *testing.T, frame []byte) {
		o := &pipeOpener{server: w.server, from: peerFR}
		st, _ := o.Open(context.Background(), "12D3KooWDE", ProtoSync)
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _ = wire.WriteFrame(st, frame) }()
		_, _ = wire.ReadFrame(wire.NewReader(st), wire.MaxSyncAnswer)
		_ = st.Close()
		o.wg.Wait()
		if n := w.aud.count(); n != 0 {
			t.Fatalf("auditor saw %d syncs of unsigned input", n)
		}
	})
}

// answerOpener answers every stream with one fixed frame.
type answerOpener struct{ frame []byte }

func (a answerOpener) Open(ctx context.Context, peer PeerID, proto string) (Stream, error) {
	c, s := pipePair()
	go func() {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := wire.ReadFrame(wire.NewReader(s), wire.MaxMatchRequest); err != nil {
			return
		}
		_ = wire.WriteFrame(s, a.frame)
	}()
	return c, nil
}

// The client reads any answer without panicking and accepts none that
// the pinned key did not sign.
func FuzzClientAnswer(f *testing.F) {
	w := getFuzzWorld(f)
	f.Add((&wire.MatchAnswer{ID: make([]byte, 16), Status: wire.StatusOK, Signature: make([]byte, 64)}).Marshal())
	f.Add([]byte{})
	_, q := w.query(phones(0, 2))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if a, err := w.client.Match(context.Background(), answerOpener{frame}, "12D3KooWDE", q); err == nil {
			t.Fatalf("Match accepted a forged answer: %+v", a)
		}
		if s, err := w.client.Sync(context.Background(), answerOpener{frame}, "12D3KooWDE", SyncQuery{Owner: "DE", Kind: kind, Reach: ReachOpen, Epoch: epoch}); err == nil {
			t.Fatalf("Sync accepted a forged answer: %+v", s)
		}
	})
}

package exchange

import (
	"context"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/wire"
)

// fuzzDesk is shared by the follow-up fuzz targets.
var fuzzDesk *desk

func getFuzzDesk(t testing.TB) *desk {
	if fuzzDesk == nil {
		w := getFuzzWorld(t)
		fuzzDesk = newDesk(t, w, nil, func(c *FollowupConfig) { c.RefusalBurst = 1 << 30 })
	}
	return fuzzDesk
}

// The follow-up server reads any bytes from a partner without panicking,
// and accepts no follow-up and reads no answer that FR did not sign.
func FuzzHandleFollowup(f *testing.F) {
	d := getFuzzDesk(f)
	f.Add((&wire.FollowupCall{Poll: &wire.FollowupPoll{PollID: make([]byte, 16), Querier: "FR", Owner: "DE",
		FollowupID: make([]byte, 16), Signature: make([]byte, 64)}}).Marshal())
	f.Add((&wire.FollowupCall{Request: &wire.FollowupRequest{ID: make([]byte, 16), Querier: "FR", Owner: "DE",
		RequestID: make([]byte, 16), Kind: kind, Mode: ModeSafeguarding, Basis: "b", Purpose: "p",
		Tags: []wire.FollowupTag{{Reach: ReachOpen, Tag: make([]byte, 32)}}, Signature: make([]byte, 64)}}).Marshal())
	f.Add([]byte{0x0a, 0x01})
	f.Fuzz(func(t *testing.T, frame []byte) {
		o := &followupOpener{srv: d.srv, from: peerFR}
		st, _ := o.Open(context.Background(), "12D3KooWDE", ProtoFollowup)
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _ = wire.WriteFrame(st, frame) }()
		_, _ = wire.ReadFrame(wire.NewReader(st), wire.MaxFollowupStatus)
		_ = st.Close()
		o.wg.Wait()
		d.inbox.mu.Lock()
		n := len(d.inbox.accepted) + len(d.inbox.denied)
		d.inbox.mu.Unlock()
		if n != 0 {
			t.Fatalf("the inbox decided %d follow-ups of unsigned input", n)
		}
	})
}

// The client reads any acknowledgement or status without panicking and
// accepts none that DE's pinned key did not sign.
func FuzzFollowupClient(f *testing.F) {
	w := getFuzzWorld(f)
	f.Add((&wire.FollowupAck{ID: make([]byte, 16), RequestSignatureSHA256: make([]byte, 32), Status: wire.StatusOK,
		DeadlineUnixMs: 1, Signature: make([]byte, 64)}).Marshal())
	f.Add((&wire.FollowupStatus{PollID: make([]byte, 16), FollowupID: make([]byte, 16), Status: wire.StatusOK,
		DeadlineUnixMs: 1, Signature: make([]byte, 64)}).Marshal())
	f.Add([]byte{})
	fu := Followup{ID: [16]byte{1}, Owner: "DE", RequestID: [16]byte{2}, Kind: kind, Epoch: epoch, Mode: ModeSafeguarding,
		Basis: "b", Purpose: "p", Tags: []FollowupTag{{Reach: ReachOpen}}}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if a, err := w.client.Followup(context.Background(), answerOpener{frame}, "12D3KooWDE", fu); err == nil {
			t.Fatalf("Followup accepted a forged acknowledgement: %+v", a)
		}
		if s, err := w.client.PollFollowup(context.Background(), answerOpener{frame}, "12D3KooWDE",
			FollowupPoll{Owner: "DE", ID: [16]byte{1}, RequestID: [16]byte{2}, Tags: 1}); err == nil {
			t.Fatalf("PollFollowup accepted a forged status: %+v", s)
		}
	})
}

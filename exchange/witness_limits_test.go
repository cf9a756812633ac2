package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/internal/wire"
)

// witnessOver serves one request on a ProtoWitness stream from peer and
// returns the answer, or nil when the witness reset the stream.
func witnessOver(t *testing.T, w *Witness, from Peer, req []byte) *WitnessAnswer {
	t.Helper()
	return witnessOverCtx(t, context.Background(), w, from, req)
}

// witnessOverCtx is witnessOver with the handler's context.
func witnessOverCtx(t *testing.T, ctx context.Context, w *Witness, from Peer, req []byte) *WitnessAnswer {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		st := pipeStream{b}
		w.Handle(ctx, from, st)
		_ = st.Close()
	}()
	defer func() { <-done }()
	defer a.Close()
	if err := wire.WriteFrame(a, req); err != nil {
		return nil
	}
	b2, err := wire.ReadFrame(wire.NewReader(a), MaxWitnessAnswer)
	if err != nil {
		return nil
	}
	ans, err := ParseWitnessAnswer(b2)
	if err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	return ans
}

// TestWitnessRefusalsThrottled: past its refusal burst, a partner's
// witness streams are reset unread and counted, nothing more reaches the
// state (no alarm), while the log itself is still served; a 409 (routine
// for a log that forgot what it sent) draws nothing.
func TestWitnessRefusalsThrottled(t *testing.T) {
	tr, vkey := newTree(t, "DE", keyDE)
	cos, err := NewCosigner("FR", witnessKey)
	if err != nil {
		t.Fatal(err)
	}
	st := newMemState()
	var th throttles
	w, err := NewWitness(WitnessConfig{Cosigner: cos, Logs: logKeys{tr.origin: vkey}, State: st,
		RefusalBurst: 3, RefusalRate: 1e-9, Throttled: th.hook})
	if err != nil {
		t.Fatal(err)
	}
	tr.add("a", 4)
	if a := witnessOver(t, w, peerDE, tr.add1(0).Marshal()); a == nil || a.Status != WitnessOK {
		t.Fatalf("first checkpoint: %+v; want 200", a)
	}
	// 409s are routine: ten of them draw nothing.
	for range 10 {
		if a := witnessOver(t, w, peerDE, (&AddCheckpoint{Checkpoint: tr.checkpoint()}).Marshal()); a == nil || a.Status != WitnessConflict {
			t.Fatalf("old 0 again: %+v; want 409", a)
		}
	}
	// Forks signed by DE's key, each another split view.
	var got []int
	for i := range 10 {
		fork := tr.clone(3)
		fork.add(string(rune('b'+i)), 1)
		a := witnessOver(t, w, peerDE, (&AddCheckpoint{OldSize: 4, Checkpoint: fork.checkpoint()}).Marshal())
		if a == nil {
			got = append(got, 0)
		} else {
			got = append(got, a.Status)
		}
	}
	want := []int{422, 422, 422, 0, 0, 0, 0, 0, 0, 0}
	if !equalInts(got, want) || len(st.alarms) != 3 {
		t.Fatalf("10 forks: statuses %v, %d alarms; want %v (0: reset) and 3", got, len(st.alarms), want)
	}
	if n := th.get("DE " + ProtoWitness); n != 7 {
		t.Errorf("Throttled called %d times for DE; want 7", n)
	}
	// Another partner is served.
	if a := witnessOver(t, w, peerFR, []byte("latest xborder.ledger/DE\n")); a == nil || a.Status != WitnessForbidden {
		t.Errorf("FR's latest during DE's throttle: %+v; want 403", a)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWitnessInFlightPerPartner: a partner holds at most MaxInFlight
// witness streams in the handler at once; its next stream waits for a slot
// until its deadline (reset), while another partner is served.
func TestWitnessInFlightPerPartner(t *testing.T) {
	tr, vkey := newTree(t, "DE", keyDE)
	cos, err := NewCosigner("FR", witnessKey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWitness(WitnessConfig{Cosigner: cos, Logs: logKeys{tr.origin: vkey}, State: newMemState(),
		MaxInFlight: 2, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Two DE streams that send one byte of a frame and stall.
	var wg sync.WaitGroup
	var held []net.Conn
	for range 2 {
		a, b := net.Pipe()
		held = append(held, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := pipeStream{b}
			w.Handle(context.Background(), peerDE, st)
			_ = st.Close()
		}()
		if _, err := a.Write([]byte{0x05}); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
		wg.Wait()
	}()
	tr.add("a", 2)
	// The held streams are in the handler once their slots are taken: a
	// stream with a short deadline finds none.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		w.limits.mu.Lock()
		if r := w.limits.m["DE"]; r != nil {
			n = len(r.slots[ProtoWitness])
		}
		w.limits.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d DE streams in the handler; want 2", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if a := witnessOverCtx(t, ctx, w, peerDE, tr.add1(0).Marshal()); a != nil {
		t.Errorf("DE's third stream: %+v; want a reset (no slot before its deadline)", a)
	}
	if a := witnessOver(t, w, peerFR, []byte("latest xborder.ledger/DE\n")); a == nil || a.Status != WitnessForbidden {
		t.Errorf("FR's stream while DE holds its slots: %+v; want 403", a)
	}
}

// TestWitnessAlarmDigestPerSplitView: one split view rendered as another
// note (an extension line, a size with a leading zero, other signatures)
// has the same digest, so it is recorded once; another root is another.
func TestWitnessAlarmDigestPerSplitView(t *testing.T) {
	w, st, tr, v := newTestWitness(t)
	ctx := context.Background()
	tr.add("a", 6)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, tr.add1(0)), tr.checkpoint(), v)
	root := tlog.Hash(sha256.Sum256([]byte("forged")))
	text := tr.origin + "\n6\n" + b64s(root[:]) + "\n"
	for _, txt := range []string{text, text + "ext\n", tr.origin + "\n06\n" + b64s(root[:]) + "\n", text + "other\n"} {
		b, err := note.Sign(&note.Note{Text: txt}, tr.signer)
		if err != nil {
			t.Fatal(err)
		}
		if a := w.AddCheckpoint(ctx, peerDE, &AddCheckpoint{OldSize: 6, Checkpoint: b}); a.Status != WitnessUnprocessable {
			t.Fatalf("fork %q: status %d; want 422", txt, a.Status)
		}
	}
	other := tlog.Hash(sha256.Sum256([]byte("forged again")))
	b, err := note.Sign(&note.Note{Text: tr.origin + "\n6\n" + b64s(other[:]) + "\n"}, tr.signer)
	if err != nil {
		t.Fatal(err)
	}
	w.AddCheckpoint(ctx, peerDE, &AddCheckpoint{OldSize: 6, Checkpoint: b})
	if len(st.alarms) != 5 {
		t.Fatalf("%d alarms; want 5", len(st.alarms))
	}
	d := st.alarms[0].Digest()
	for i, a := range st.alarms[1:4] {
		if a.Digest() != d {
			t.Errorf("rendering %d of one split view: another digest", i+1)
		}
	}
	if st.alarms[4].Digest() == d {
		t.Error("another root: the same digest")
	}
	if !bytes.Contains(st.alarms[1].NewNote, []byte("ext\n")) {
		t.Error("the evidence is not the note as sent")
	}
}

func b64s(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

package exchange

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// memState is a WitnessState in memory.
type memState struct {
	mu     sync.Mutex
	notes  map[string][]byte
	alarms []*Alarm
}

func newMemState() *memState { return &memState{notes: map[string][]byte{}} }

func (s *memState) Latest(ctx context.Context, origin string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notes[origin], nil
}

func (s *memState) Swap(ctx context.Context, origin string, old, next []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !bytes.Equal(s.notes[origin], old) {
		return ErrWitnessConflict
	}
	s.notes[origin] = next
	return nil
}

func (s *memState) Alarm(ctx context.Context, a *Alarm) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alarms = append(s.alarms, a)
	return nil
}

type logKeys map[string]string

func (k logKeys) LogKey(origin string) (string, error) {
	if v, ok := k[origin]; ok {
		return v, nil
	}
	return "", fmt.Errorf("%s: %w", origin, ErrUnknownLog)
}

// tree is an RFC 6962 tree in memory that signs checkpoints as a ledger.
type tree struct {
	t      testing.TB
	origin string
	signer note.Signer
	hashes []tlog.Hash
	n      int64
}

func newTree(t testing.TB, agency string, priv ed25519.PrivateKey) (*tree, string) {
	origin := WitnessOriginPrefix + agency
	skey, vkey := noteKeys(t, origin, priv)
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &tree{t: t, origin: origin, signer: s}, vkey
}

// noteKeys returns the signed-note signer and verifier keys of priv.
func noteKeys(t testing.TB, name string, priv ed25519.PrivateKey) (string, string) {
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	return "PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...)), vkey
}

func (tr *tree) add(tag string, n int) {
	for i := 0; i < n; i++ {
		hs, err := tlog.StoredHashes(tr.n, []byte(fmt.Sprintf("%s-%d", tag, tr.n)), tlog.HashReaderFunc(tr.read))
		if err != nil {
			tr.t.Fatal(err)
		}
		tr.hashes = append(tr.hashes, hs...)
		tr.n++
	}
}

func (tr *tree) read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = tr.hashes[x]
	}
	return out, nil
}

func (tr *tree) root() tlog.Hash {
	h, err := tlog.TreeHash(tr.n, tlog.HashReaderFunc(tr.read))
	if err != nil {
		tr.t.Fatal(err)
	}
	return h
}

func (tr *tree) checkpoint() []byte {
	r := tr.root()
	b, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: tr.origin, Size: uint64(tr.n), Hash: r[:]}.Marshal())}, tr.signer)
	if err != nil {
		tr.t.Fatal(err)
	}
	return b
}

func (tr *tree) proof(old int64) []tlog.Hash {
	if old == 0 {
		return nil
	}
	p, err := tlog.ProveTree(tr.n, old, tlog.HashReaderFunc(tr.read))
	if err != nil {
		tr.t.Fatal(err)
	}
	return p
}

func (tr *tree) add1(old int64) *AddCheckpoint {
	return &AddCheckpoint{OldSize: uint64(old), Proof: tr.proof(old), Checkpoint: tr.checkpoint()}
}

// clone copies the first n leaves of tr into another tree of the same
// origin and key: a fork from there.
func (tr *tree) clone(n int64) *tree {
	c := &tree{t: tr.t, origin: tr.origin, signer: tr.signer}
	c.hashes = append(c.hashes, tr.hashes[:tlog.StoredHashCount(n)]...)
	c.n = n
	return c
}

var (
	witnessKey = agencyKey(0x77)
	peerDE     = Peer{ID: "12D3KooWDE", Agency: "DE"}
)

func newTestWitness(t testing.TB) (*Witness, *memState, *tree, note.Verifier) {
	t.Helper()
	tr, vkey := newTree(t, "DE", keyDE)
	cos, err := NewCosigner("FR", witnessKey)
	if err != nil {
		t.Fatal(err)
	}
	st := newMemState()
	w, err := NewWitness(WitnessConfig{Cosigner: cos, Logs: logKeys{tr.origin: vkey}, State: st})
	if err != nil {
		t.Fatal(err)
	}
	wvkey, err := WitnessVerifierKey("FR", witnessKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	return w, st, tr, v
}

// cosigned checks a 200 answer's cosignature over cp with v.
func cosigned(t testing.TB, a *WitnessAnswer, cp []byte, v note.Verifier) {
	t.Helper()
	if a.Status != WitnessOK {
		t.Fatalf("status %d (%q); want 200", a.Status, a.Body)
	}
	n, err := note.Open(append(append([]byte(nil), cp...), a.Body...), note.VerifierList(v))
	if err != nil {
		t.Fatalf("cosignature does not verify: %v\n%s%s", err, cp, a.Body)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != WitnessName("FR") {
		t.Fatalf("verified %+v; want one cosignature of %s", n.Sigs, WitnessName("FR"))
	}
}

func TestWitnessConsistentGrowthCosigned(t *testing.T) {
	w, st, tr, v := newTestWitness(t)
	ctx := context.Background()
	tr.add("a", 3)
	r := tr.add1(0)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, r), r.Checkpoint, v)
	tr.add("a", 5)
	r = tr.add1(3)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, r), r.Checkpoint, v)
	// The same checkpoint again is cosigned again.
	r.OldSize = 8
	r.Proof = nil
	cosigned(t, w.AddCheckpoint(ctx, peerDE, r), r.Checkpoint, v)
	if got := st.notes[tr.origin]; !bytes.Equal(got, r.Checkpoint) {
		t.Fatalf("stored %q; want the checkpoint of size 8", got)
	}
	if len(st.alarms) != 0 {
		t.Fatalf("%d alarms; want none", len(st.alarms))
	}
}

func TestWitnessConflictThenRetry(t *testing.T) {
	w, _, tr, v := newTestWitness(t)
	ctx := context.Background()
	tr.add("a", 4)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, tr.add1(0)), tr.checkpoint(), v)
	tr.add("a", 4)
	a := w.AddCheckpoint(ctx, peerDE, tr.add1(0)) // the client forgot what it sent
	if n, err := a.ConflictSize(); err != nil || n != 4 {
		t.Fatalf("answer %d %q: size %d, %v; want 409 with 4", a.Status, a.Body, n, err)
	}
	r := tr.add1(4)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, r), r.Checkpoint, v)
}

func TestWitnessForkRefused(t *testing.T) {
	w, st, tr, v := newTestWitness(t)
	ctx := context.Background()
	tr.add("a", 6)
	honest := tr.add1(0)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, honest), honest.Checkpoint, v)

	// Same size, another root: entry 5 rewritten.
	fork := tr.clone(5)
	fork.add("forged", 1)
	a := w.AddCheckpoint(ctx, peerDE, fork.add1(6))
	if a.Status != WitnessUnprocessable {
		t.Fatalf("same size, another root: status %d; want 422", a.Status)
	}
	// A larger tree that does not extend the cosigned one: the proof
	// the origin sends cannot lead from the cosigned root.
	fork.add("forged", 4)
	p, err := tlog.ProveTree(fork.n, 6, tlog.HashReaderFunc(fork.read))
	if err != nil {
		t.Fatal(err)
	}
	b := w.AddCheckpoint(ctx, peerDE, &AddCheckpoint{OldSize: 6, Proof: p, Checkpoint: fork.checkpoint()})
	if b.Status != WitnessUnprocessable {
		t.Fatalf("fork past the cosigned size: status %d; want 422", b.Status)
	}
	if len(st.alarms) != 2 {
		t.Fatalf("%d alarms; want 2", len(st.alarms))
	}
	for i, al := range st.alarms {
		if al.Origin != tr.origin || al.OldSize != 6 || al.OldRoot != tr.root() || !bytes.Equal(al.OldNote, honest.Checkpoint) ||
			al.NewNote == nil || al.From != peerDE {
			t.Errorf("alarm %d = %+v; want the cosigned and the refused checkpoint as evidence", i, al)
		}
	}
	if st.alarms[0].NewSize != 6 || st.alarms[1].NewSize != 10 || st.alarms[0].Digest() == st.alarms[1].Digest() {
		t.Errorf("alarm sizes %d, %d; want 6 and 10 with distinct digests", st.alarms[0].NewSize, st.alarms[1].NewSize)
	}
	// The witness still holds the honest checkpoint.
	if !bytes.Equal(st.notes[tr.origin], honest.Checkpoint) {
		t.Fatal("the witness state moved to a refused checkpoint")
	}
}

func TestWitnessRollbackRefused(t *testing.T) {
	w, st, tr, v := newTestWitness(t)
	ctx := context.Background()
	tr.add("a", 9)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, tr.add1(0)), tr.checkpoint(), v)
	old := tr.clone(5)
	for _, r := range []*AddCheckpoint{old.add1(0), {OldSize: 5, Checkpoint: old.checkpoint()}} {
		a := w.AddCheckpoint(ctx, peerDE, r)
		if n, err := a.ConflictSize(); err != nil || n != 9 {
			t.Fatalf("rolled back to 5 (old %d): answer %d %q; want 409 with 9", r.OldSize, a.Status, a.Body)
		}
	}
	// Claiming the stored size with a smaller tree is a bad request.
	if a := w.AddCheckpoint(ctx, peerDE, &AddCheckpoint{OldSize: 9, Checkpoint: old.checkpoint()}); a.Status != WitnessBadRequest {
		t.Fatalf("old 9 with a checkpoint of 5: status %d; want 400", a.Status)
	}
	if len(st.alarms) != 0 || !bytes.Contains(st.notes[tr.origin], []byte("\n9\n")) {
		t.Fatalf("alarms %d, state %q; want none and size 9 kept", len(st.alarms), st.notes[tr.origin])
	}
}

func TestWitnessRefusals(t *testing.T) {
	w, _, tr, _ := newTestWitness(t)
	ctx := context.Background()
	tr.add("a", 2)
	other, _ := newTree(t, "IT", agencyKey(0x55))
	other.add("b", 2)
	forged, _ := newTree(t, "DE", agencyKey(0x56)) // DE's origin, another key
	forged.add("a", 2)
	tampered := bytes.Replace(tr.checkpoint(), []byte("\n2\n"), []byte("\n3\n"), 1)
	for _, c := range []struct {
		name string
		req  []byte
		want int
	}{
		{"unknown origin", other.add1(0).Marshal(), WitnessUnknownLog},
		{"signed by another key", forged.add1(0).Marshal(), WitnessForbidden},
		{"tampered", (&AddCheckpoint{Checkpoint: tampered}).Marshal(), WitnessForbidden},
		{"old above size", (&AddCheckpoint{OldSize: 3, Checkpoint: tr.checkpoint()}).Marshal(), WitnessBadRequest},
		{"proof from empty", (&AddCheckpoint{Proof: []tlog.Hash{{}}, Checkpoint: tr.checkpoint()}).Marshal(), WitnessUnprocessable},
		{"no old line", []byte("\n" + string(tr.checkpoint())), WitnessBadRequest},
		{"leading zero", []byte("old 00\n\n" + string(tr.checkpoint())), WitnessBadRequest},
		{"bad proof line", []byte("old 0\nnot base64\n\n" + string(tr.checkpoint())), WitnessBadRequest},
		{"latest of unknown", []byte("latest xborder.ledger/IT\n"), WitnessUnknownLog},
		{"latest before any", []byte("latest " + tr.origin + "\n"), WitnessUnknownLog},
	} {
		if a := w.Answer(ctx, peerDE, c.req); a.Status != c.want {
			t.Errorf("%s: status %d; want %d", c.name, a.Status, c.want)
		}
	}
	peerIT := Peer{ID: "12D3KooWIT", Agency: "IT"}
	if a := w.Answer(ctx, peerIT, []byte("latest "+tr.origin+"\n")); a.Status != WitnessForbidden {
		t.Errorf("latest of DE's ledger asked by IT: status %d; want 403", a.Status)
	}
}

// TestWitnessThirdPartyProof: a bad proof with a good checkpoint from
// someone other than the log is refused, but is no alarm: only the log's
// own proof is its word.
func TestWitnessThirdPartyProof(t *testing.T) {
	w, st, tr, v := newTestWitness(t)
	ctx := context.Background()
	tr.add("a", 4)
	cosigned(t, w.AddCheckpoint(ctx, peerDE, tr.add1(0)), tr.checkpoint(), v)
	tr.add("a", 4)
	r := tr.add1(4)
	r.Proof[0][0] ^= 1
	peerIT := Peer{ID: "12D3KooWIT", Agency: "IT"}
	if a := w.AddCheckpoint(ctx, peerIT, r); a.Status != WitnessUnprocessable || len(st.alarms) != 0 {
		t.Fatalf("bad proof from IT: status %d, %d alarms; want 422 and none", a.Status, len(st.alarms))
	}
	if a := w.AddCheckpoint(ctx, peerDE, r); a.Status != WitnessUnprocessable || len(st.alarms) != 1 {
		t.Fatalf("bad proof from DE itself: status %d, %d alarms; want 422 and one", a.Status, len(st.alarms))
	}
}

// witnessOpener serves ProtoWitness streams in memory.
type witnessOpener struct {
	w  *Witness
	wg sync.WaitGroup
}

func (o *witnessOpener) Open(ctx context.Context, peer PeerID, proto string) (Stream, error) {
	if proto != ProtoWitness {
		return nil, errors.New("protocol not supported")
	}
	a, b := net.Pipe()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		st := pipeStream{b}
		o.w.Handle(context.Background(), peerDE, st)
		_ = st.Close()
	}()
	return pipeStream{a}, nil
}

// TestWitnessOverStreams: the client's AddCheckpoint and LatestCheckpoint
// against the witness's Handle.
func TestWitnessOverStreams(t *testing.T) {
	w, _, tr, v := newTestWitness(t)
	o := &witnessOpener{w: w}
	defer o.wg.Wait()
	c := newClient(t, keyDE, time.Now)
	ctx := context.Background()
	tr.add("a", 5)
	r := tr.add1(0)
	a, err := c.AddCheckpoint(ctx, o, "w", r)
	if err != nil {
		t.Fatal(err)
	}
	cosigned(t, a, r.Checkpoint, v)
	l, err := c.LatestCheckpoint(ctx, o, "w", tr.origin)
	if err != nil || l.Status != WitnessOK {
		t.Fatalf("LatestCheckpoint = %+v, %v", l, err)
	}
	_, vkey := noteKeys(t, tr.origin, keyDE)
	lv, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(l.Body, note.VerifierList(lv, v))
	if err != nil || len(n.Sigs) != 2 || !strings.HasPrefix(n.Text, tr.origin+"\n5\n") {
		t.Fatalf("latest = %q, %v; want the checkpoint of 5 signed by DE and cosigned by FR", l.Body, err)
	}
}

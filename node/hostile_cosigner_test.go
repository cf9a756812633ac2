package node

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// The hostile partner as a witness of the target's ledger: TH's host
// answers the target's collector on the witness protocol with whatever a
// row needs. A claim that carries no checkpoint of the target's key
// contradicting its tree is an alarm entry at most once per witness and
// reason; a checkpoint of the target's key that contradicts its tree is
// one entry per split view; a cosignature that does not verify is never
// published; and the honest GB keeps cosigning every round.

// answerWitness makes the hostile node answer every witness stream with
// the raw bytes answer returns for the request (latest or add-checkpoint);
// restore serves the real witness again.
func (h *hostilePeer) answerWitness(answer func(req []byte) []byte) (restore func()) {
	h.node.host.Handle(exchange.ProtoWitness, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		b, err := wire.ReadFrame(wire.NewReader(st), exchange.MaxWitnessRequest)
		if err != nil {
			_ = st.Reset()
			return
		}
		if _, err := st.Write(answer(b)); err != nil {
			_ = st.Reset()
			return
		}
		_ = st.CloseWrite()
	})
	return func() { h.node.host.Handle(exchange.ProtoWitness, h.node.wit.svc.Handle) }
}

func TestHostileWitnessOfLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("three agencies")
	}
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	deA, gbA, thA := startAgency(t, "DE", 1, logs), startAgency(t, "GB", 1, logs), startAgency(t, "TH", 1, logs)
	deA.pin(gbA)
	deA.pin(thA)
	gbA.pin(deA)
	thA.pin(deA)
	de := deA.leader()
	h := newHostilePeer(t, thA, deA, de)
	deKey := de.cards.cfg.Key
	logKey := de.Audit().VerifierKey()
	thName, gbName := exchange.WitnessName("TH"), exchange.WitnessName("GB")
	wkeys := partnerWitnesses(de)

	// DE's genuine older checkpoints, all consistent with its tree.
	var older [][]byte
	const rounds = 6
	for range rounds {
		older = append(older, grow(t, de, 2).Note)
	}
	var round atomic.Int64      // the collection round under way
	rotating := func() []byte { // a different genuine checkpoint each round
		return older[int(round.Load())%len(older)]
	}
	answer := func(status int, body []byte) []byte {
		return framed((&exchange.WitnessAnswer{Status: status, Body: body}).Marshal())
	}
	isLatest := func(req []byte) bool { return bytes.HasPrefix(req, []byte("latest ")) }
	// forged is a split view of DE's ledger signed by DE's key: the size
	// of the first older checkpoint with the i-th forged root.
	forgedSize, err := format.ParseCheckpoint(older[0], logKey)
	if err != nil {
		t.Fatal(err)
	}
	forged := func(i int) []byte { return signedCheckpoint(t, deKey, "DE", forgedSize.Size, forkRoot(500+i)) }
	// badCosig is TH's witness name signing with a key not its card's.
	badSigner, err := exchange.NewCosigner("TH", newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	badCosig := func(req []byte) []byte {
		r, err := exchange.ParseAddCheckpoint(req)
		if err != nil {
			return answer(exchange.WitnessBadRequest, nil)
		}
		text := string(exchange.NoteText(r.Checkpoint))
		signed, err := note.Sign(&note.Note{Text: text}, badSigner)
		if err != nil {
			t.Error(err)
			return answer(exchange.WitnessUnavailable, nil)
		}
		return answer(exchange.WitnessOK, signed[len(text)+1:])
	}
	garbage := []byte("not a witness answer \x00\xff")

	rows := []struct {
		name    string
		answer  func(req []byte) []byte
		entries int // witness_alarm entries the row adds over its rounds
	}{
		{name: "422 to every add-checkpoint, latest rotating genuine checkpoints", answer: func(req []byte) []byte {
			if isLatest(req) {
				return answer(exchange.WitnessOK, rotating())
			}
			return answer(exchange.WitnessUnprocessable, nil)
		}, entries: 1},
		{name: "409 with a size larger than DE's, latest rotating genuine checkpoints", answer: func(req []byte) []byte {
			if isLatest(req) {
				return answer(exchange.WitnessOK, rotating())
			}
			size, _, _ := de.Audit().TreeHead()
			return answer(exchange.WitnessConflict, []byte(strconv.FormatUint(size+1000, 10)+"\n"))
		}, entries: 1},
		{name: "garbage frames", answer: func([]byte) []byte { return framed(garbage) }},
		{name: "oversized frames", answer: func([]byte) []byte {
			return append(frameHeader(exchange.MaxWitnessAnswer+1), garbage...)
		}},
		{name: "truncated frames", answer: func([]byte) []byte { return append(frameHeader(1000), garbage...) }},
		{name: "latest not signed by DE's key, 200 with junk", answer: func(req []byte) []byte {
			if isLatest(req) {
				return answer(exchange.WitnessOK, signedCheckpoint(t, h.key, "DE", 1<<30, forkRoot(7)))
			}
			return answer(exchange.WitnessOK, garbage)
		}},
		{name: "cosignature not under TH's card witness key", answer: func(req []byte) []byte {
			if isLatest(req) {
				return answer(exchange.WitnessOK, rotating())
			}
			return badCosig(req)
		}},
		// Genuine split views signed by DE's key, two of them alternating:
		// one entry each, however many rounds and whichever answer
		// carries them.
		{name: "422 with latest a split view signed by DE's key", answer: func(req []byte) []byte {
			if isLatest(req) {
				return answer(exchange.WitnessOK, forged(int(round.Load())%2))
			}
			return answer(exchange.WitnessUnprocessable, nil)
		}, entries: 2},
	}
	var last uint64
	for _, r := range rows {
		t.Run(strings.ReplaceAll(r.name, " ", "_"), func(t *testing.T) {
			restore := h.answerWitness(r.answer)
			defer restore()
			before := alarmEntries(t, de)
			for i := range rounds {
				cp := grow(t, de, 1)
				round.Store(int64(i))
				last = de.wit.coll.round(ctx, last)
				rec, err := de.auditG.Get(nsCosigned, "checkpoint")
				if err != nil {
					t.Fatalf("round %d: no cosigned checkpoint: %v", i, err)
				}
				got, err := format.ParseCheckpoint(rec, logKey)
				names, cerr := format.Cosigners(rec, logKey, wkeys)
				if err != nil || cerr != nil || got.Size != cp.Size || len(names) != 1 || names[0] != gbName {
					t.Fatalf("round %d: cosigned checkpoint size %d (%v), cosigners %v (%v); want size %d by GB only",
						i, got.Size, err, names, cerr, cp.Size)
				}
				if bytes.Contains(rec, []byte("— "+thName+" ")) {
					t.Fatalf("round %d: cosigned checkpoint carries TH's unverifiable cosignature:\n%s", i, rec)
				}
			}
			pub, err := (&backend{audit: de.auditG}).Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cp, err := de.Audit().Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			exp, err := de.wit.cosignExport(ctx, cp)
			if err != nil {
				t.Fatal(err)
			}
			for what, b := range map[string][]byte{"published": []byte(pub.Cosigned), "export": exp} {
				if bytes.Contains(b, []byte("— "+thName+" ")) {
					t.Errorf("%s checkpoint carries TH's cosignature:\n%s", what, b)
				}
				if !bytes.Contains(b, []byte("— "+gbName+" ")) {
					t.Errorf("%s checkpoint lacks GB's cosignature:\n%s", what, b)
				}
			}
			got := alarmEntries(t, de) - before
			t.Logf("%s: %d rounds, %d witness_alarm entries", r.name, rounds, got)
			if got != r.entries {
				t.Errorf("%d witness_alarm entries over %d rounds; want %d\n%s", got, rounds, r.entries, alarmsOf(t, de, before))
			}
		})
	}
}

// alarmsOf describes n's witness_alarm entries from the skip-th on.
func alarmsOf(t *testing.T, n *Node, skip int) string {
	var b strings.Builder
	for _, e := range entriesOf(t, n, ledger.TypeWitness)[skip:] {
		b.WriteString(e.Body.Purpose + "\n")
	}
	return b.String()
}

package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

var updateWitnessed = flag.Bool("update-witnessed", false, "rewrite ledger/format/testdata/witnessed from TestWitnessing")

// signedCheckpoint signs a checkpoint of size and root with an agency's
// key, as its ledger would (or as a forger holding the key would).
func signedCheckpoint(t testing.TB, priv ed25519.PrivateKey, agency string, size uint64, root tlog.Hash) []byte {
	t.Helper()
	origin := format.Origin(agency)
	vkey, err := note.NewEd25519VerifierKey(origin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	s, err := note.NewSigner("PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: origin, Size: size, Hash: root[:]}.Marshal())}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// grow appends n entries to a's ledger and returns the checkpoint that
// covers them.
func grow(t testing.TB, n *Node, count int) ledger.Checkpoint {
	t.Helper()
	for i := 0; i < count; i++ {
		if _, err := n.auditG.Append(context.Background(), ledger.Entry{Header: ledger.Header{Type: ledger.TypeLedgerRead, Outcome: ledger.OutcomeOK},
			Body: ledger.Body{Actor: "user:auditor", Purpose: "witness test"}}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := n.Audit().Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// partnerWitnesses returns the witness keys of n's pinned partners.
func partnerWitnesses(n *Node) []string { return witnessKeys(n.wit.coll.witnesses()) }

// entriesOf returns n's ledger entries of type ty.
func entriesOf(t testing.TB, n *Node, ty ledger.Type) []ledger.Entry {
	t.Helper()
	es, err := n.Audit().Entries(context.Background(), ledger.Filter{Types: []ledger.Type{ty}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestWitnessing: three agencies that pin each other. GB's checkpoints
// are cosigned by FR's and DE's witnesses as its tree grows; the export
// carries both cosignatures and verifies with a quorum of 2, not with a
// forged one; a split view (the same size with another root, signed by
// GB's key) is refused by FR with an alarm entry, its evidence and the
// metric, once however often it is shown; a rollback is refused; and a
// witness that holds a larger tree of GB's ledger than GB has is an alarm
// on GB's side (gossip).
func TestWitnessing(t *testing.T) {
	if testing.Short() {
		t.Skip("three agencies")
	}
	logs := &syncBuf{}
	gbA, frA, deA := startAgency(t, "GB", 1, logs), startAgency(t, "FR", 1, logs), startAgency(t, "DE", 1, logs)
	for _, a := range []*agency{gbA, frA, deA} {
		for _, b := range []*agency{gbA, frA, deA} {
			if a != b {
				a.pin(b)
			}
		}
	}
	gb, fr, de := gbA.leader(), frA.leader(), deA.leader()
	ctx := context.Background()
	wkeys := partnerWitnesses(gb)
	if len(wkeys) != 2 {
		t.Fatalf("GB sees %d partner witnesses; want 2", len(wkeys))
	}
	logKey := gb.Audit().VerifierKey()

	// Consistent growth, cosigned by both.
	for round, add := range []int{1, 5, 3} {
		cp := grow(t, gb, add)
		out, err := gb.wit.coll.Cosign(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		names, err := format.Cosigners(out, logKey, wkeys)
		if err != nil || len(names) != 2 {
			t.Fatalf("round %d (size %d): cosigners %v, %v; want FR and DE\n%s", round, cp.Size, names, err, logs.Bytes())
		}
	}
	if st := gb.wit.status(); st.Cosignatures != 2 || st.Witnesses != 2 || st.Alarms != 0 {
		t.Fatalf("GB witness status %+v; want 2 of 2 cosignatures, no alarm", st)
	}
	// Published: GET /v1/ledger/checkpoint serves the cosigned checkpoint.
	pub, err := (&backend{audit: gb.auditG}).Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names, err := format.Cosigners([]byte(pub.Cosigned), logKey, wkeys); err != nil || len(names) != 2 {
		t.Fatalf("published cosigned checkpoint %q: %v, %v; want 2 cosigners", pub.Cosigned, names, err)
	}

	// The export carries the cosignatures and verifies with a quorum.
	dir := filepath.Join(t.TempDir(), "export")
	cp, err := gb.Audit().Export(ctx, dir, "user:admin")
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := gb.wit.cosignExport(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, format.ExportCheckpoint), cosigned, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := format.VerifyQuorum(os.DirFS(dir), logKey, nil, wkeys, 2)
	if err != nil || len(rep.Cosigners) != 2 {
		t.Fatalf("VerifyQuorum(2) = %+v, %v; want FR and DE", rep, err)
	}
	if *updateWitnessed {
		writeWitnessed(t, dir, logKey, wkeys)
	}
	// A key that is not the card's: GB's own witness key posing as FR's.
	other, _ := exchange.WitnessVerifierKey("FR", witnessKey(gb.key).Public().(ed25519.PublicKey))
	if _, err := format.VerifyQuorum(os.DirFS(dir), logKey, nil, []string{other, wkeys[1]}, 2); !errors.Is(err, format.ErrVerify) {
		t.Fatalf("VerifyQuorum with a key that is not FR's card's = %v; want ErrVerify", err)
	}

	// A split view: the same size, another root, signed by GB's key.
	frPeer := exchange.PeerID(fr.PeerID().String())
	forged := signedCheckpoint(t, gb.key, "GB", cp.Size, tlog.Hash(sha256.Sum256([]byte("forged"))))
	for i := 0; i < 2; i++ {
		a, err := gb.xcl.AddCheckpoint(ctx, gb.host, frPeer, &exchange.AddCheckpoint{OldSize: cp.Size, Checkpoint: forged})
		if err != nil || a.Status != exchange.WitnessUnprocessable {
			t.Fatalf("forged checkpoint: %+v, %v; want 422", a, err)
		}
	}
	alarms := entriesOf(t, fr, ledger.TypeWitness)
	if len(alarms) != 1 || alarms[0].Partner != "GB" || alarms[0].RequestID != format.Origin("GB") ||
		alarms[0].PaddedSize != cp.Size || alarms[0].Count != cp.Size {
		t.Fatalf("FR's alarm entries %+v; want one about GB at size %d", alarms, cp.Size)
	}
	if got := testutil.ToFloat64(fr.wit.state.alarms.WithLabelValues("witness")); got != 1 {
		t.Fatalf("xborder_witness_alarms_total{side=witness} = %v; want 1", got)
	}
	ev, err := fr.Audit().Get(nsWitnessEvidence, hexDigest(alarms[0].Digest))
	if err != nil || !bytes.Contains(ev, []byte(`"reason":"same size, another root"`)) {
		t.Fatalf("evidence %s, %v; want both notes under the entry's digest", ev, err)
	}
	if st := fr.wit.status(); st.Alarms != 1 || !strings.Contains(st.LastAlarm, "xborder.ledger/GB") {
		t.Fatalf("FR witness status %+v; want one alarm about GB", st)
	}

	// A rollback: an earlier, consistent checkpoint is refused with the
	// size FR cosigned, and is no alarm (it may be stale, not forged).
	root5, err := gb.Audit().RootAt(5)
	if err != nil {
		t.Fatal(err)
	}
	a, err := gb.xcl.AddCheckpoint(ctx, gb.host, frPeer, &exchange.AddCheckpoint{Checkpoint: signedCheckpoint(t, gb.key, "GB", 5, root5)})
	if n, cerr := a.ConflictSize(); err != nil || cerr != nil || n != cp.Size {
		t.Fatalf("rolled-back checkpoint: %+v, %v; want 409 with %d", a, err, cp.Size)
	}
	if n := len(entriesOf(t, fr, ledger.TypeWitness)); n != 1 {
		t.Fatalf("%d alarm entries after a rollback; want still 1", n)
	}

	// Gossip: DE is made to hold a larger tree of GB's ledger (its
	// record reset, then a checkpoint GB's ledger never had), as if GB
	// had been rolled back; GB's next round records the alarm.
	if _, err := de.auditG.Delete(ctx, nsWitness, format.Origin("GB")); err != nil {
		t.Fatal(err)
	}
	dePeer := exchange.PeerID(de.PeerID().String())
	big := signedCheckpoint(t, gb.key, "GB", cp.Size+100, tlog.Hash(sha256.Sum256([]byte("future"))))
	if a, err := gb.xcl.AddCheckpoint(ctx, gb.host, dePeer, &exchange.AddCheckpoint{Checkpoint: big}); err != nil || a.Status != exchange.WitnessOK {
		t.Fatalf("first checkpoint to DE: %+v, %v", a, err)
	}
	gb.wit.coll.round(ctx, 0)
	gb.wit.coll.round(ctx, 0)
	mine := entriesOf(t, gb, ledger.TypeWitness)
	if len(mine) == 0 || mine[0].Partner != "DE" {
		t.Fatalf("GB's alarm entries %+v; want one naming DE", mine)
	}
	if got := testutil.ToFloat64(gb.wit.state.alarms.WithLabelValues("log")); got < 1 || got > 2 {
		t.Fatalf("xborder_witness_alarms_total{side=log} = %v; want 1 or 2 (gossip, and the refused add-checkpoint)", got)
	}
	n := len(mine)
	gb.wit.coll.round(ctx, 0)
	if got := len(entriesOf(t, gb, ledger.TypeWitness)); got != n {
		t.Fatalf("%d alarm entries after another round; want still %d (recorded once)", got, n)
	}
}

func hexDigest(d ledger.Digest) string { return hex.EncodeToString(d[:]) }

// writeWitnessed copies the export's checkpoint and the keys to
// ledger/format/testdata/witnessed, for the independent verifier test.
func writeWitnessed(t *testing.T, dir, logKey string, wkeys []string) {
	out := filepath.Join("..", "ledger", "format", "testdata", "witnessed")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ledger.pub": []byte(logKey + "\n"), "witnesses": []byte(strings.Join(wkeys, "\n") + "\n")}
	for _, name := range []string{format.ExportCheckpoint, format.ExportEntries} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWitnessStateSurvivesLeaderLoss: FR's witness state is replicated:
// after its leader is gone, the replica that leads next still refuses a
// split view of, and a rollback below, what FR cosigned.
func TestWitnessStateSurvivesLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("three replicas")
	}
	logs := &syncBuf{}
	gbA, frA := startAgency(t, "GB", 1, logs), startAgency(t, "FR", 3, logs)
	gbA.pin(frA)
	frA.pin(gbA)
	gb := gbA.leader()
	ctx := context.Background()
	cp := grow(t, gb, 4)
	out, err := gb.wit.coll.Cosign(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if names, err := format.Cosigners(out, gb.Audit().VerifierKey(), partnerWitnesses(gb)); err != nil || len(names) != 1 {
		t.Fatalf("cosigners %v, %v; want FR\n%s", names, err, logs.Bytes())
	}
	old := frA.leader()
	for i, n := range frA.nodes {
		if n == old {
			frA.stop(i)
		}
	}
	next := frA.leader()
	if next == old {
		t.Fatal("no new leader")
	}
	frPeer := exchange.PeerID(next.PeerID().String())
	forged := signedCheckpoint(t, gb.key, "GB", cp.Size, tlog.Hash(sha256.Sum256([]byte("forged"))))
	a, err := gb.xcl.AddCheckpoint(ctx, gb.host, frPeer, &exchange.AddCheckpoint{OldSize: cp.Size, Checkpoint: forged})
	if err != nil || a.Status != exchange.WitnessUnprocessable {
		t.Fatalf("split view after failover: %+v, %v; want 422", a, err)
	}
	root, err := gb.Audit().RootAt(2)
	if err != nil {
		t.Fatal(err)
	}
	a, err = gb.xcl.AddCheckpoint(ctx, gb.host, frPeer, &exchange.AddCheckpoint{Checkpoint: signedCheckpoint(t, gb.key, "GB", 2, root)})
	if n, cerr := a.ConflictSize(); err != nil || cerr != nil || n != cp.Size {
		t.Fatalf("rollback after failover: %+v, %v; want 409 with %d", a, err, cp.Size)
	}
	until(t, "the alarm on every running FR replica", func() bool {
		for _, n := range frA.running() {
			if len(entriesOf(t, n, ledger.TypeWitness)) != 1 {
				return false
			}
		}
		return true
	})
}

package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// The hostile peer on the witness protocol: it submits checkpoints and
// asks for them on the target's witness. A refusal is a status (and a log
// line); a split view of a log's own key is an alarm entry, once per split
// view; every refusal draws on the partner's witness refusal budget.

// sendWitness opens a witness stream to the target, writes raw, closes its
// writing side and returns the answer's status ("200", "409 size 12",
// ...), or "reset" when the target reset the stream or closed it without a
// frame. A 200 whose cosignature does not verify against the target's
// pinned witness key fails the test.
func (h *hostilePeer) sendWitness(raw []byte) string {
	a := h.witness(raw)
	if a == nil {
		return "reset"
	}
	if a.Status == exchange.WitnessConflict {
		n, err := a.ConflictSize()
		if err != nil {
			h.t.Fatalf("409 without a size: %v", err)
		}
		return fmt.Sprintf("409 size %d", n)
	}
	return strconv.Itoa(a.Status)
}

// witness is sendWitness's answer, parsed, or nil for a reset.
func (h *hostilePeer) witness(raw []byte) *exchange.WitnessAnswer {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	st, err := h.node.host.Open(ctx, h.to, exchange.ProtoWitness)
	if err != nil {
		return nil
	}
	defer st.Close()
	if _, err := st.Write(raw); err != nil {
		_ = st.Reset()
		return nil
	}
	_ = st.CloseWrite()
	b, err := wire.ReadFrame(bufio.NewReader(st), exchange.MaxWitnessAnswer)
	if err != nil {
		return nil
	}
	a, err := exchange.ParseWitnessAnswer(b)
	if err != nil {
		h.t.Fatalf("witness answer does not parse: %v", err)
	}
	return a
}

// addCheckpoint sends n's checkpoint cp to the target's witness from the
// hostile peer, with a proof from the size the witness holds (learnt from
// a 409), as an honest log (or anyone relaying it) would; it returns the
// final status.
func (h *hostilePeer) addCheckpoint(n *Node, cp ledger.Checkpoint) string {
	h.t.Helper()
	var old uint64
	for range 3 {
		r := &exchange.AddCheckpoint{OldSize: old, Checkpoint: cp.Note}
		if old > 0 && old < cp.Size {
			p, err := n.Audit().ConsistencyProof(old, cp.Size)
			if err != nil {
				h.t.Fatalf("ConsistencyProof(%d, %d): %v", old, cp.Size, err)
			}
			r.Proof = p
		}
		a := h.witness(framed(r.Marshal()))
		if a == nil || a.Status != exchange.WitnessConflict {
			return h.status(a)
		}
		m, err := a.ConflictSize()
		if err != nil || m > cp.Size {
			return fmt.Sprintf("409 size %d", m)
		}
		old = m
	}
	return "409 three times"
}

func (h *hostilePeer) status(a *exchange.WitnessAnswer) string {
	if a == nil {
		return "reset"
	}
	return strconv.Itoa(a.Status)
}

// signNote signs a checkpoint text as the ledger of origin with priv
// (the agency key of origin's agency, or a forger's).
func signNote(t *testing.T, priv ed25519.PrivateKey, origin, text string) []byte {
	t.Helper()
	vkey, err := note.NewEd25519VerifierKey(origin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	s, err := note.NewSigner("PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forkRoot is the root of the i-th forged tree.
func forkRoot(i int) tlog.Hash {
	return tlog.Hash(sha256.Sum256(fmt.Appendf(nil, "hostile fork %d", i)))
}

// alarmEntries counts the target's witness_alarm entries, whatever the
// partner.
func alarmEntries(t *testing.T, n *Node) int { return len(entriesOf(t, n, ledger.TypeWitness)) }

// witnessAttacks are the rows of the hostile peer on the target's witness:
// rows of one request each, and floods to run last (refusals past the
// partner's witness refusal budget are reset unread, so the alarms a flood
// of distinct forks writes are bounded). gb is the honest partner's node
// (a third party's checkpoints).
func (h *hostilePeer) witnessAttacks(gb *Node, gbKey ed25519.PrivateKey) (rows, floods []attack) {
	garbage := []byte("not a witness request \x00\xff")
	raw := func(b []byte) func() outcomes {
		return func() outcomes { return outcomes{h.sendWitness(b): 1} }
	}
	add := func(r *exchange.AddCheckpoint) func() outcomes { return raw(framed(r.Marshal())) }
	th := h.node
	var cosigned ledger.Checkpoint // TH's checkpoint the target cosigned
	own := func() ledger.Checkpoint {
		cp, err := th.Audit().Checkpoint()
		if err != nil {
			h.t.Fatal(err)
		}
		return cp
	}
	// fork is TH's key's checkpoint of the cosigned size with root i.
	fork := func(i int, ext string) []byte {
		r := forkRoot(i)
		return signNote(h.t, h.key, format.Origin(h.agency),
			fmt.Sprintf("%s\n%d\n%s\n%s", format.Origin(h.agency), cosigned.Size, base64.StdEncoding.EncodeToString(r[:]), ext))
	}
	rows = []attack{
		// The control: TH's own checkpoint, from the size the witness
		// holds, cosigned.
		{name: "witness/own checkpoint (control)", run: func() outcomes {
			cosigned = own()
			return outcomes{h.addCheckpoint(th, cosigned): 1}
		}, want: "200"},
		// Frames that do not frame: reset; requests that do not parse: 400.
		{name: "witness/truncated frame", run: raw(append(frameHeader(1000), garbage[:10]...)), want: "reset"},
		{name: "witness/oversized frame", run: raw(append(frameHeader(exchange.MaxWitnessRequest+1), garbage...)), want: "reset"},
		{name: "witness/non-minimal length", run: raw([]byte{0x80, 0x00}), want: "reset"},
		{name: "witness/malformed add-checkpoint", run: raw(framed(garbage)), want: "400"},
		{name: "witness/add-checkpoint, checkpoint cut short", run: func() outcomes {
			b := (&exchange.AddCheckpoint{OldSize: cosigned.Size, Checkpoint: cosigned.Note}).Marshal()
			return outcomes{h.sendWitness(framed(b[:len(b)-20])): 1}
		}, want: "400"},
		{name: "witness/trailing byte in frame", run: func() outcomes {
			b := (&exchange.AddCheckpoint{OldSize: cosigned.Size, Checkpoint: cosigned.Note}).Marshal()
			return outcomes{h.sendWitness(framed(append(b, 0))): 1}
		}, want: "400"},
		{name: "witness/bytes after the request", run: func() outcomes {
			b := (&exchange.AddCheckpoint{OldSize: cosigned.Size, Checkpoint: cosigned.Note}).Marshal()
			return outcomes{h.sendWitness(append(framed(b), garbage...)): 1}
		}, want: "200"},
		{name: "witness/64 proof lines", run: func() outcomes {
			return outcomes{h.sendWitness(framed((&exchange.AddCheckpoint{OldSize: 1, Proof: make([]tlog.Hash, 64),
				Checkpoint: cosigned.Note}).Marshal())): 1}
		}, want: "400"},
		{name: "witness/malformed latest", run: raw(framed([]byte("latest \n"))), want: "400"},
		{name: "witness/latest with a trailing line", run: raw(framed([]byte("latest " + format.Origin(h.agency) + "\nx\n"))), want: "400"},
		// Signatures and origins.
		{name: "witness/checkpoint signed by another agency", run: func() outcomes {
			return add(&exchange.AddCheckpoint{OldSize: cosigned.Size,
				Checkpoint: signedCheckpoint(h.t, gbKey, h.agency, cosigned.Size+1, forkRoot(-1))})()
		}, want: "403"},
		{name: "witness/checkpoint signed by a key not the card's", run: func() outcomes {
			return add(&exchange.AddCheckpoint{OldSize: cosigned.Size,
				Checkpoint: signedCheckpoint(h.t, newKey(h.t), h.agency, cosigned.Size+1, forkRoot(-2))})()
		}, want: "403"},
		{name: "witness/GB's origin under TH's key", run: func() outcomes {
			return add(&exchange.AddCheckpoint{Checkpoint: signedCheckpoint(h.t, h.key, "GB", 1, forkRoot(-3))})()
		}, want: "403"},
		{name: "witness/origin of no pinned partner", run: func() outcomes {
			return add(&exchange.AddCheckpoint{Checkpoint: signedCheckpoint(h.t, h.key, "ZZ", 1, forkRoot(-4))})()
		}, want: "404"},
		{name: "witness/old size above the checkpoint's", run: add(&exchange.AddCheckpoint{OldSize: 1 << 40,
			Checkpoint: signedCheckpoint(h.t, h.key, h.agency, 1, forkRoot(-5))}), want: "400"},
		{name: "witness/rollback (an older checkpoint of its own)", run: func() outcomes {
			root, err := th.Audit().RootAt(1)
			if err != nil {
				h.t.Fatal(err)
			}
			return add(&exchange.AddCheckpoint{Checkpoint: signedCheckpoint(h.t, h.key, h.agency, 1, root)})()
		}, want: "^409 size \\d+$"},
		// A third party's checkpoints: relayed as they are, cosigned; with a
		// bad proof, refused and no alarm against GB's ledger.
		{name: "witness/GB's checkpoint relayed", run: func() outcomes {
			cp, err := gb.Audit().Checkpoint()
			if err != nil {
				h.t.Fatal(err)
			}
			return outcomes{h.addCheckpoint(gb, cp): 1}
		}, want: "200"},
		{name: "witness/GB's checkpoint, bad proof sent by TH", run: func() outcomes {
			a := h.witness(framed([]byte("latest " + format.Origin("GB") + "\n")))
			if a == nil || a.Status != exchange.WitnessForbidden {
				h.t.Errorf("latest of GB's ledger asked by TH: %s; want 403", h.status(a))
			}
			held, err := gb.Audit().Checkpoint()
			if err != nil {
				h.t.Fatal(err)
			}
			if s := h.addCheckpoint(gb, held); s != "200" {
				return outcomes{"GB's checkpoint not cosigned: " + s: 1}
			}
			next := grow(h.t, gb, 3)
			p, err := gb.Audit().ConsistencyProof(held.Size, next.Size)
			if err != nil {
				h.t.Fatal(err)
			}
			p[0][0] ^= 1
			return add(&exchange.AddCheckpoint{OldSize: held.Size, Proof: p, Checkpoint: next.Note})()
		}, want: "422"},
		{name: "witness/latest of another agency's origin", run: raw(framed([]byte("latest " + format.Origin("GB") + "\n"))), want: "403"},
		{name: "witness/latest of its own origin (control)", run: raw(framed([]byte("latest " + format.Origin(h.agency) + "\n"))), want: "200"},
		// Split views of TH's own ledger, signed by its key: an alarm entry
		// each, once per split view however it is rendered.
		{name: "witness/fork: cosigned size, another root", run: func() outcomes {
			return add(&exchange.AddCheckpoint{OldSize: cosigned.Size, Checkpoint: fork(0, "")})()
		}, want: "422", entries: 1, alarms: 1},
		{name: "witness/the same fork again", run: func() outcomes {
			return add(&exchange.AddCheckpoint{OldSize: cosigned.Size, Checkpoint: fork(0, "")})()
		}, want: "422"},
		{name: "witness/the same fork, an extension line", run: func() outcomes {
			return add(&exchange.AddCheckpoint{OldSize: cosigned.Size, Checkpoint: fork(0, "ext\n")})()
		}, want: "422"},
	}
	forks := func(ext func(i int) string, root func(i int) tlog.Hash) func() outcomes {
		return func() outcomes {
			return parallel(hostileFlood, 8, func(i int) string {
				r := root(i)
				b := signNote(h.t, h.key, format.Origin(h.agency), fmt.Sprintf("%s\n%d\n%s\n%s",
					format.Origin(h.agency), cosigned.Size, base64.StdEncoding.EncodeToString(r[:]), ext(i)))
				return h.sendWitness(framed((&exchange.AddCheckpoint{OldSize: cosigned.Size, Checkpoint: b}).Marshal()))
			})
		}
	}
	floods = []attack{
		{name: "witness/flood of distinct forks", run: forks(func(int) string { return "" }, func(i int) tlog.Hash { return forkRoot(1000 + i) }),
			want: "^(422( ×\\d+)?, )?reset ×\\d+$", entries: exchange.DefaultRefusalBurst, alarms: exchange.DefaultRefusalBurst, bounded: true},
		{name: "witness/flood of one fork, 200 renderings", run: forks(func(i int) string { return fmt.Sprintf("x%d\n", i) },
			func(int) tlog.Hash { return forkRoot(0) }), want: "^(422( ×\\d+)?, )?reset ×\\d+$"},
		{name: "witness/flood of malformed requests", run: func() outcomes {
			return parallel(hostileFlood, 8, func(int) string { return h.sendWitness(framed([]byte("old x\n"))) })
		}, want: "^(400( ×\\d+)?, )?reset ×\\d+$"},
	}
	return rows, floods
}

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// witnessClient asks partners' witnesses (*exchange.Client).
type witnessClient interface {
	AddCheckpoint(ctx context.Context, o exchange.Opener, peer exchange.PeerID, r *exchange.AddCheckpoint) (*exchange.WitnessAnswer, error)
	LatestCheckpoint(ctx context.Context, o exchange.Opener, peer exchange.PeerID, origin string) (*exchange.WitnessAnswer, error)
}

// collectorConfig is what a collector is built from.
type collectorConfig struct {
	Agency   string
	Audit    *raftGroup // this ledger: checkpoints, proofs, the cosigned record
	Pins     witnessPins
	Client   witnessClient
	Opener   exchange.Opener
	State    *witnessState // where alarms about this ledger go
	Leader   func() bool   // only the audit leader collects
	Interval time.Duration // how often; zero: one minute
	Log      *slog.Logger
}

// collector gathers partners' cosignatures on this ledger's checkpoints:
// on the audit leader, every Interval while the tree grew (or a witness
// has not cosigned the newest checkpoint yet), it sends the newest
// checkpoint with a consistency proof to every pinned partner's witness,
// and keeps the checkpoint with the cosignatures that verify against the
// partners' cards as the record nsCosigned/checkpoint. Each round it also
// asks every witness which checkpoint of this ledger it last cosigned and
// checks it against this tree (gossip): a witness that saw another history
// of this ledger, or a larger one, is an alarm. Start runs the loop; Close
// ends it.
type collector struct {
	cfg collectorConfig

	mu   sync.Mutex
	sent map[string]uint64 // witness agency: the size it last cosigned, as far as we know

	stop chan struct{}
	done chan struct{}
}

func newCollector(cfg collectorConfig) *collector {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	return &collector{cfg: cfg, sent: map[string]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start runs the collection loop until Close.
func (c *collector) Start() {
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.cfg.Interval)
		defer t.Stop()
		var last uint64
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			if !c.cfg.Leader() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Interval)
			go func() {
				select {
				case <-c.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			last = c.round(ctx, last)
			cancel()
		}
	}()
}

// Close stops the loop and waits for it.
func (c *collector) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	return nil
}

// round collects cosignatures when the tree grew since last or a witness
// is missing, and gossips; it returns the size it collected for.
func (c *collector) round(ctx context.Context, last uint64) uint64 {
	// Read after a barrier, and only while leading: a new leader may not
	// have applied all it committed, and a deposed one hands out the last
	// checkpoint it stored; either would look to a witness like a tree
	// smaller than the one it cosigned (testnet chaos: a false alarm).
	if err := c.cfg.Audit.Linearize(ledger.FailFast(ctx)); err != nil || !c.cfg.Leader() {
		return last
	}
	cp, err := c.cfg.Audit.Checkpoint()
	if err != nil {
		c.cfg.Log.Warn("witness round: no checkpoint", "err", err)
		return last
	}
	ws := c.witnesses()
	if cp.Size != last || c.missing(ws, cp) {
		if _, err := c.Cosign(ctx, cp); err != nil {
			c.cfg.Log.Warn("witness round", "err", err)
		}
	}
	c.gossip(ctx, ws)
	return cp.Size
}

// witnesses returns the pinned partners whose card has a witness key, by
// agency code.
func (c *collector) witnesses() []*card.Card {
	var out []*card.Card
	for _, pc := range c.cfg.Pins.Pins() {
		if pc.Witness != nil {
			out = append(out, pc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Agency < out[j].Agency })
	return out
}

// missing reports whether some witness has not cosigned cp yet.
func (c *collector) missing(ws []*card.Card, cp ledger.Checkpoint) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range ws {
		if c.sent[w.Agency] != cp.Size {
			return true
		}
	}
	return false
}

// witnessKeys returns the cosignature verifier keys of ws.
func witnessKeys(ws []*card.Card) []string {
	var out []string
	for _, w := range ws {
		if k, err := exchange.WitnessVerifierKey(w.Agency, w.Witness); err == nil {
			out = append(out, k)
		}
	}
	return out
}

// Cosign asks every partner's witness to cosign cp, in parallel, and
// returns cp's note with the cosignatures that verify; it records the
// result as this ledger's cosigned checkpoint when it has any.
func (c *collector) Cosign(ctx context.Context, cp ledger.Checkpoint) ([]byte, error) {
	ws := c.witnesses()
	lines := make([][]byte, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := c.ask(ctx, w, cp)
			if err != nil {
				c.cfg.Log.Warn("no cosignature", "partner", w.Agency, "size", cp.Size, "err", err)
				return
			}
			lines[i] = l
		}()
	}
	wg.Wait()
	out := append([]byte(nil), cp.Note...)
	n := 0
	for _, l := range lines {
		if l != nil {
			out = append(out, l...)
			n++
		}
	}
	if n == 0 {
		return out, nil
	}
	if _, err := c.cfg.Audit.Put(ctx, nsCosigned, "checkpoint", out); err != nil {
		// The cosignatures are still good; the next round records them.
		c.cfg.Log.Warn("cosigned checkpoint not recorded", "size", cp.Size, "err", err)
	}
	c.cfg.Log.Info("checkpoint cosigned", "size", cp.Size, "cosignatures", n, "witnesses", len(ws))
	return out, nil
}

// ask obtains w's cosignature line on cp: add-checkpoint from the size it
// last cosigned (learnt from a 409 when not known), on each of w's
// replicas in turn until one answers.
func (c *collector) ask(ctx context.Context, w *card.Card, cp ledger.Checkpoint) ([]byte, error) {
	vkey, err := exchange.WitnessVerifierKey(w.Agency, w.Witness)
	if err != nil {
		return nil, err
	}
	v, err := exchange.NewCosignatureVerifier(vkey)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	old := c.sent[w.Agency]
	c.mu.Unlock()
	if old > cp.Size {
		old = 0
	}
	var lastErr error
	for _, r := range w.Replicas {
		peer := exchange.Peer{ID: exchange.PeerID(r.PeerID), Agency: w.Agency}
		for try := 0; try < 2; try++ {
			req := &exchange.AddCheckpoint{OldSize: old, Checkpoint: cp.Note}
			if old > 0 && old < cp.Size {
				if req.Proof, err = c.cfg.Audit.ConsistencyProof(old, cp.Size); err != nil {
					return nil, err
				}
			}
			a, err := c.cfg.Client.AddCheckpoint(ctx, c.cfg.Opener, peer.ID, req)
			if err != nil {
				lastErr = err
				break // the next replica
			}
			switch a.Status {
			case exchange.WitnessOK:
				line, err := cosignatureLine(cp.Note, a.Body, v)
				if err != nil {
					return nil, err
				}
				c.mu.Lock()
				c.sent[w.Agency] = cp.Size
				c.mu.Unlock()
				return line, nil
			case exchange.WitnessConflict:
				m, err := a.ConflictSize()
				if err != nil {
					return nil, err
				}
				if m > cp.Size {
					if c.holds(ctx, m) {
						// cp was stale (leadership moved during the
						// round): the tree holds what the witness
						// cosigned. The next round sends a newer one.
						return nil, fmt.Errorf("witness of %s cosigned size %d, newer than checkpoint %d of this round", w.Agency, m, cp.Size)
					}
					// The witness cosigned a larger tree of ours than we
					// have: this ledger was rolled back.
					c.claimed(ctx, peer, "the witness cosigned a larger tree of this ledger", cp)
					return nil, fmt.Errorf("witness of %s cosigned size %d, this ledger has %d", w.Agency, m, cp.Size)
				}
				old = m
				continue
			case exchange.WitnessUnprocessable:
				c.claimed(ctx, peer, "the witness refused this checkpoint as a split view", cp)
				return nil, fmt.Errorf("witness of %s refused size %d as a split view", w.Agency, cp.Size)
			case exchange.WitnessUnavailable:
				lastErr = fmt.Errorf("witness of %s unavailable", w.Agency)
			default:
				return nil, fmt.Errorf("witness of %s answered %d", w.Agency, a.Status)
			}
			break
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no replica answered")
	}
	return nil, lastErr
}

// holds reports whether this ledger, read after a barrier, has at least
// size entries.
func (c *collector) holds(ctx context.Context, size uint64) bool {
	if err := c.cfg.Audit.Linearize(ledger.FailFast(ctx)); err != nil {
		return false
	}
	n, _, err := c.cfg.Audit.TreeHead()
	return err == nil && n >= size
}

// cosignatureLine returns the signature lines of body that are v's
// cosignature on the checkpoint note.
func cosignatureLine(cpNote, body []byte, v note.Verifier) ([]byte, error) {
	n, err := note.Open(append(append([]byte(nil), cpNote...), body...), note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("cosignature of %s does not verify: %w", v.Name(), err)
	}
	var out []byte
	for _, s := range n.Sigs {
		out = append(out, []byte("— "+s.Name+" "+s.Base64+"\n")...)
	}
	return out, nil
}

// gossip asks every witness for the newest checkpoint of this ledger it
// cosigned and checks it against this tree.
func (c *collector) gossip(ctx context.Context, ws []*card.Card) {
	origin := format.Origin(c.cfg.Agency)
	for _, w := range ws {
		for _, r := range w.Replicas {
			peer := exchange.Peer{ID: exchange.PeerID(r.PeerID), Agency: w.Agency}
			a, err := c.cfg.Client.LatestCheckpoint(ctx, c.cfg.Opener, peer.ID, origin)
			if err != nil {
				continue // the next replica
			}
			if a.Status == exchange.WitnessOK {
				c.checkSeen(ctx, peer, a.Body)
			}
			break
		}
	}
}

// checkSeen checks a checkpoint of this ledger that a witness holds: it
// must be signed by this ledger's key and name a tree this ledger has.
func (c *collector) checkSeen(ctx context.Context, peer exchange.Peer, seen []byte) {
	cp, why, own, err := c.contradiction(seen)
	if err != nil {
		c.cfg.Log.Warn("gossip: witness holds a checkpoint this ledger's key did not sign", "partner", peer.Agency, "err", err)
		return
	}
	if why != "" {
		c.contradicted(ctx, peer, why, own, &cp)
	}
}

// contradiction parses seen, a checkpoint a witness holds, with this
// ledger's key and returns why it contradicts this tree ("" when it does
// not) and what this ledger has at its size.
func (c *collector) contradiction(seen []byte) (format.Checkpoint, string, ledger.Checkpoint, error) {
	cp, err := format.ParseCheckpoint(seen, c.cfg.Audit.VerifierKey())
	if err != nil {
		return cp, "", ledger.Checkpoint{}, err
	}
	size, _, err := c.cfg.Audit.TreeHead()
	if err != nil {
		return cp, "", ledger.Checkpoint{}, err
	}
	own := ledger.Checkpoint{Origin: cp.Origin, Size: size}
	if cp.Size > size {
		return cp, "a witness holds a larger tree of this ledger", own, nil
	}
	root, err := c.cfg.Audit.RootAt(cp.Size)
	if err != nil {
		return cp, "", ledger.Checkpoint{}, err
	}
	if root != cp.Root {
		own.Size, own.Root = cp.Size, root
		return cp, "a witness holds another history of this ledger", own, nil
	}
	return cp, "", own, nil
}

// claimed handles a witness's answer that says, by its status alone, that
// this ledger contradicts what it cosigned. The claim is substantiated
// only by a checkpoint of this ledger's key that contradicts this tree: if
// the witness's latest is one, that split view is recorded, once, as
// gossip records it. Otherwise the claim carries no evidence and is
// recorded once per witness and reason, whatever the witness returns as
// latest (a genuine older checkpoint of ours proves nothing, and would
// make a hostile witness's alarms as many as our checkpoints).
func (c *collector) claimed(ctx context.Context, peer exchange.Peer, why string, ours ledger.Checkpoint) {
	l, err := c.cfg.Client.LatestCheckpoint(ctx, c.cfg.Opener, peer.ID, format.Origin(c.cfg.Agency))
	if err == nil && l.Status == exchange.WitnessOK {
		if seen, what, own, err := c.contradiction(l.Body); err == nil && what != "" {
			c.contradicted(ctx, peer, what, own, &seen)
			return
		}
	}
	c.contradicted(ctx, peer, why, ours, nil)
}

// contradicted records an alarm about this ledger: ours is what this
// ledger has, seen what the witness holds (nil for an unsubstantiated
// claim, recorded once per witness and reason).
func (c *collector) contradicted(ctx context.Context, peer exchange.Peer, why string, ours ledger.Checkpoint, seen *format.Checkpoint) {
	a := &exchange.Alarm{Origin: format.Origin(c.cfg.Agency), From: peer, Reason: why,
		NewSize: ours.Size, NewRoot: ours.Root, NewNote: ours.Note}
	if seen != nil {
		a.OldSize, a.OldRoot, a.OldNote = seen.Size, seen.Root, seen.Note
	}
	if a.NewNote == nil {
		a.NewNote = []byte(fmt.Sprintf("%s\n%d\n%s\n", a.Origin, ours.Size, rootOf(ours.Root)))
	}
	if bytes.Equal(a.OldNote, a.NewNote) {
		return
	}
	if err := c.cfg.State.record(ctx, "log", a); err != nil {
		c.cfg.Log.Warn("witness alarm not recorded", "err", err)
	}
}

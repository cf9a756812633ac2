package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// hostilePeer is a pinned partner gone bad: the real node of an agency
// whose card the target has pinned, so that its libp2p host (its key on
// that card) passes the target's gater as any partner does. It opens
// streams to one replica of the target with that host and writes whatever
// an attack needs, signed with its agency key or another.
type hostilePeer struct {
	t      *testing.T
	node   *Node
	agency string
	key    ed25519.PrivateKey
	target string          // the target agency's code
	to     exchange.PeerID // the target replica attacked
	epoch  uint64          // the target's current epoch
}

// newHostilePeer makes a's first replica the hostile peer of target's
// replica n.
func newHostilePeer(t *testing.T, a *agency, target *agency, n *Node) *hostilePeer {
	t.Helper()
	h := &hostilePeer{t: t, node: a.leader(), agency: a.cc, target: target.cc,
		to: exchange.PeerID(n.host.ID().String()), epoch: n.epochs.currentEpoch()}
	h.key = h.node.cards.cfg.Key
	return h
}

// targetKey returns the target's open epoch key of kind from the card h
// holds pinned.
func (h *hostilePeer) targetKey(kind string, epoch uint64) *psi.PublicKey {
	h.t.Helper()
	c, ok := h.node.cards.Pins()[h.target]
	if !ok {
		h.t.Fatalf("%s has not pinned %s", h.agency, h.target)
	}
	for _, k := range c.EpochKeys {
		if k.Kind == kind && k.Epoch == epoch && k.Reach == reachOpen {
			pk, err := psi.ParsePublicKey(k.Key)
			if err != nil {
				h.t.Fatalf("ParsePublicKey: %v", err)
			}
			return pk
		}
	}
	h.t.Fatalf("%s card lists no %s key of epoch %d", h.target, kind, epoch)
	return nil
}

// batch blinds n phone numbers (or e-mail addresses) for the target's key
// of kind; key is the kind whose key blinds (another kind's key, or the
// current epoch's for an epoch the batch only claims).
func (h *hostilePeer) batch(kind string, epoch uint64, n int) []byte {
	h.t.Helper()
	k, err := ident.ParseKind(kind)
	if err != nil {
		k = ident.Phone
	}
	var inputs [][]byte
	for i := range n {
		v := fmt.Sprintf("+44770099%04d", i)
		if k == ident.Email {
			v = fmt.Sprintf("h%d@example.org", i)
		}
		inputs = append(inputs, ident.Input(k, v))
	}
	pub := h.targetKey(k.String(), h.epoch)
	q, err := psi.NewQuerier(psi.QuerierConfig{Key: pub, Kind: kind, Epoch: epoch, Dummy: ident.DummyInput})
	if err != nil {
		h.t.Fatalf("NewQuerier(%s, %d): %v", kind, epoch, err)
	}
	_, req, err := q.Blind(inputs, rand.Reader)
	if err != nil {
		h.t.Fatalf("Blind: %v", err)
	}
	b, err := req.MarshalBinary()
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// match returns a well-formed match request of n values of kind, signed
// by the hostile agency's key after mutate (nil: none) changed it; sign
// re-signs with another key when set.
func (h *hostilePeer) match(kind string, n int, mutate func(*wire.MatchRequest), sign ed25519.PrivateKey) *wire.MatchRequest {
	h.t.Helper()
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	m := &wire.MatchRequest{ID: id, TimeUnixMs: uint64(time.Now().UnixMilli()), Querier: h.agency,
		Responder: h.target, Kind: kind, Epoch: h.epoch, CaseRef: "OP-H", LegalBasis: "Art. 10",
		Offence: "thb", Purpose: "hostile", Mode: exchange.ModeEnforcement, Reaches: []string{reachOpen}}
	withRequestBatch(m, h.batch(kind, h.epoch, n))
	if mutate != nil {
		mutate(m)
	}
	if sign == nil {
		sign = h.key
	}
	m.Signature = ed25519.Sign(sign, m.SignedBytes())
	return m
}

// withRequestBatch sets a request's batch, its digest and padded size.
func withRequestBatch(m *wire.MatchRequest, eb []byte) {
	sum := sha256.Sum256(eb)
	m.EvalRequest, m.BatchSHA256 = eb, sum[:]
	if r, err := psi.UnmarshalEvalRequest(eb); err == nil {
		m.PaddedSize = uint64(r.Len())
	}
}

// syncReq returns a sync request of kind signed by the hostile agency's
// key (or sign) after mutate.
func (h *hostilePeer) syncReq(kind string, mutate func(*wire.SyncRequest), sign ed25519.PrivateKey) *wire.SyncRequest {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	m := &wire.SyncRequest{ID: id, TimeUnixMs: uint64(time.Now().UnixMilli()), Querier: h.agency,
		Owner: h.target, Kind: kind, Reach: reachOpen, Epoch: h.epoch}
	if mutate != nil {
		mutate(m)
	}
	if sign == nil {
		sign = h.key
	}
	m.Signature = ed25519.Sign(sign, m.SignedBytes())
	return m
}

// frameHeader returns the length prefix of a frame of n bytes.
func frameHeader(n int) []byte { return binary.AppendUvarint(nil, uint64(n)) }

// framed returns b as one frame.
func framed(b []byte) []byte { return append(frameHeader(len(b)), b...) }

// send opens a stream of proto to the target, writes raw, closes its
// writing side and reads the answer's head: "reset" when the target reset
// the stream or closed it without a frame, "ok", "denied:REASON" or
// "unavailable" otherwise. An answer not signed by the target fails the
// test.
func (h *hostilePeer) send(proto string, raw []byte) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	st, err := h.node.host.Open(ctx, h.to, proto)
	if err != nil {
		return "refused at open"
	}
	defer st.Close()
	if _, err := st.Write(raw); err != nil {
		_ = st.Reset()
		return "reset"
	}
	_ = st.CloseWrite()
	limit := wire.MaxMatchAnswer
	if proto == exchange.ProtoSync {
		limit = wire.MaxSyncAnswer
	}
	b, err := wire.ReadFrame(bufio.NewReader(st), limit)
	if err != nil {
		return "reset"
	}
	pub, err := h.node.cards.AgencyKey(h.target)
	if err != nil {
		h.t.Fatalf("AgencyKey(%s): %v", h.target, err)
	}
	var status wire.Status
	var reason string
	switch proto {
	case exchange.ProtoMatch:
		a, err := wire.UnmarshalMatchAnswer(b)
		if err != nil || !ed25519.Verify(pub, a.SignedBytes(), a.Signature) {
			h.t.Fatalf("match answer does not decode or verify: %v", err)
		}
		status, reason = a.Status, a.Reason
	default:
		a, err := wire.UnmarshalSyncAnswer(b)
		if err != nil || !ed25519.Verify(pub, a.SignedBytes(), a.Signature) {
			h.t.Fatalf("sync answer does not decode or verify: %v", err)
		}
		status, reason = a.Status, a.Reason
	}
	switch status {
	case wire.StatusOK:
		return "ok"
	case wire.StatusDenied:
		return "denied:" + reason
	}
	return "unavailable"
}

// sendMatch sends m on a match stream.
func (h *hostilePeer) sendMatch(m *wire.MatchRequest) string {
	return h.send(exchange.ProtoMatch, framed(m.Marshal()))
}

// sendSync sends m on a sync stream.
func (h *hostilePeer) sendSync(m *wire.SyncRequest) string {
	return h.send(exchange.ProtoSync, framed(m.Marshal()))
}

// outcomes tallies the outcomes of a flood: "denied:replay ×3, ok ×1".
type outcomes map[string]int

func (o outcomes) String() string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if o[k] == 1 {
			parts = append(parts, k)
		} else {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, o[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// partnerEntries counts the target replica's ledger entries about
// partner, sync transfers left out (the partner's own sync loop writes
// them when it pleases), by type.
func partnerEntries(t *testing.T, n *Node, partner string) (total int, byType map[ledger.Type]int) {
	t.Helper()
	es, err := n.Audit().Entries(context.Background(), ledger.Filter{Partner: partner})
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	byType = map[ledger.Type]int{}
	for _, e := range es {
		if e.Type == ledger.TypeSync {
			continue
		}
		byType[e.Type]++
		total++
	}
	return total, byType
}

// resources is what a flood must not grow without bound on the target.
type resources struct {
	goroutines int
	heap       uint64 // runtime heap in use after a GC, bytes
	streams    int    // libp2p streams open on the target's host
}

func (r resources) String() string {
	return fmt.Sprintf("%d goroutines, %d MiB heap, %d streams", r.goroutines, r.heap>>20, r.streams)
}

func measure(n *Node) resources {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return resources{goroutines: runtime.NumGoroutine(), heap: ms.HeapInuse, streams: n.host.Streams()}
}

// settle polls until the target's resources are back within slack of
// base, or fails after a minute.
func settle(t *testing.T, n *Node, base resources, what string) resources {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := measure(n)
		if r.goroutines <= base.goroutines+hostileGoroutineSlack && r.streams <= base.streams+hostileStreamSlack &&
			r.heap <= base.heap+hostileHeapSlack {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the target holds %v; before it held %v", what, r, base)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// How far a target's resources may stay above what they were before an
// attack once it has settled: background work (Raft, sync loops, GC
// timing) moves them a little.
const (
	hostileGoroutineSlack = 25
	hostileStreamSlack    = 4
	hostileHeapSlack      = 48 << 20
)

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// allows reports whether n's host admits peer ID id, and for which agency.
func allows(n *Node, id string) (string, bool) {
	p, err := peer.Decode(id)
	if err != nil {
		return "", false
	}
	return n.host.Allows(p)
}

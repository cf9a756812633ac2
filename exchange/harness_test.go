package exchange

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/psi"
)

// Test world: agency DE answers and owns sets, FR asks; GB is pinned too.
var (
	now     = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	peerFR  = Peer{ID: "12D3KooWFR", Agency: "FR"}
	peerGB  = Peer{ID: "12D3KooWGB", Agency: "GB"}
	keyDE   = agencyKey(1)
	keyFR   = agencyKey(2)
	keyGB   = agencyKey(3)
	keyEvil = agencyKey(4)
)

const (
	kind  = "phone"
	epoch = 3
)

func agencyKey(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = b
	return ed25519.NewKeyFromSeed(seed)
}

func detReader(seed uint64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return mrand.NewChaCha8(s)
}

// pins is a Keys of pinned agency keys.
type pins map[string]ed25519.PublicKey

func (p pins) AgencyKey(agency string) (ed25519.PublicKey, error) {
	k, ok := p[agency]
	if !ok {
		return nil, fmt.Errorf("agency %s is not pinned", agency)
	}
	return k, nil
}

func allPins() pins {
	return pins{
		"DE": keyDE.Public().(ed25519.PublicKey),
		"FR": keyFR.Public().(ed25519.PublicKey),
		"GB": keyGB.Public().(ed25519.PublicKey),
	}
}

// admitter records calls; like the ledger, it denies a request ID seen
// before with ReasonReplay. Like node's policy, it denies a request that
// asks a reach its mode may not ask (allowed: enforcement asks open,
// safeguarding all three, unless allow says otherwise), in Permit and
// Admit, recording the denial.
type admitter struct {
	mu      sync.Mutex
	allow   map[string][]string // mode → reaches it may ask; nil: the default
	denied  []Inbound           // requests denied by Permit or Admit for their reaches
	seen    map[[16]byte]bool
	admits  []Inbound
	refused []Reason
	err     error // returned by Admit when set
	// retries makes a repeated request ID with the same signature a retry
	// of one command, admitted again, as the ledger does.
	retries bool
	sigs    map[[16]byte][32]byte
	// refuseErr is returned by Refused when set: the refusal is not
	// recorded.
	refuseErr error
}

// reachDenied decides on the request's mode and reaches; a.mu is held.
func (a *admitter) reachDenied(in *Inbound) error {
	allow := a.allow
	if allow == nil {
		allow = map[string][]string{ModeEnforcement: {ReachOpen}, ModeSafeguarding: Reaches}
	}
	for _, r := range in.Reaches {
		if !slices.Contains(allow[in.Mode], r) {
			a.denied = append(a.denied, *in)
			return Deny(ReasonReachNotAllowed)
		}
	}
	return nil
}

func (a *admitter) Admit(ctx context.Context, in *Inbound) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admits = append(a.admits, *in)
	if a.err != nil {
		return a.err
	}
	if err := a.reachDenied(in); err != nil {
		return err
	}
	if a.seen == nil {
		a.seen = make(map[[16]byte]bool)
	}
	if a.seen[in.ID] {
		if a.retries && a.sigs[in.ID] == in.SignatureSHA256 {
			return nil
		}
		return Deny(ReasonReplay)
	}
	a.seen[in.ID] = true
	if a.sigs == nil {
		a.sigs = make(map[[16]byte][32]byte)
	}
	a.sigs[in.ID] = in.SignatureSHA256
	return nil
}

// Permit returns err when set, as Admit does, then decides on the reaches.
func (a *admitter) Permit(ctx context.Context, in *Inbound) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	return a.reachDenied(in)
}

func (a *admitter) Refused(ctx context.Context, in *Inbound, r Reason) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refuseErr != nil {
		return a.refuseErr
	}
	a.refused = append(a.refused, r)
	return nil
}

func (a *admitter) counts() (admits, refused int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.admits), len(a.refused)
}

// counting wraps a responder and counts Evaluate calls.
type counting struct {
	r     *psi.Responder
	calls atomic.Int64
}

func (c *counting) Evaluate(req *psi.EvalRequest, rnd io.Reader) (*psi.Evaluation, error) {
	c.calls.Add(1)
	return c.r.Evaluate(req, rnd)
}

// responders serves the kind and epoch of the test world, one evaluator
// per reach.
type responders struct {
	evs     map[string]*counting
	version uint32
}

func (r *responders) Responder(k string, e uint64, reach string) (Evaluator, uint32, error) {
	ev, ok := r.evs[reach]
	if k != kind || e != epoch || !ok {
		return nil, 0, fmt.Errorf("responder %s/%d/%s: %w", k, e, reach, ErrNoSet)
	}
	return ev, r.version, nil
}

// sets is the owner's Sets: one holding per kind (the open reach) or per
// "kind/reach" (the others).
type sets struct {
	mu       sync.Mutex
	holdings map[string]*Holding
	card     []byte
}

// holdingKey is the key of sets.holdings and of authorizer.
func holdingKey(k, reach string) string {
	if reach == ReachOpen {
		return k
	}
	return k + "/" + reach
}

func (s *sets) Holding(ctx context.Context, k string, e uint64, reach string) (*Holding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.holdings[holdingKey(k, reach)]
	if !ok || e != epoch {
		return nil, fmt.Errorf("holding %s/%d: %w", k, e, ErrNoSet)
	}
	return &Holding{Base: h.Base, Segments: append([][]byte(nil), h.Segments...)}, nil
}

func (s *sets) Card(ctx context.Context) ([]byte, error) { return s.card, nil }

// add appends a delta to the open reach's set of k.
func (s *sets) add(k string, seg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holdings[k]
	h.Segments = append(h.Segments, seg)
}

// authorizer allows the listed kinds (open reach) and "kind/reach" (other
// reaches) to every partner.
type authorizer map[string]bool

func (a authorizer) AllowSync(ctx context.Context, p Peer, k, reach string) error {
	if !a[k] {
		return Deny(ReasonKindNotAllowed)
	}
	if !a[holdingKey(k, reach)] {
		return Deny(ReasonReachNotAllowed)
	}
	return nil
}

type auditor struct {
	mu      sync.Mutex
	served  []Served
	refused []Reason
	err     error
	// refuseErr is returned by SyncRefused when set: the refusal is not
	// recorded.
	refuseErr error
}

func (a *auditor) Synced(ctx context.Context, s *Served) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.served = append(a.served, *s)
	return nil
}

func (a *auditor) SyncRefused(ctx context.Context, s *Served, r Reason) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refuseErr != nil {
		return a.refuseErr
	}
	a.refused = append(a.refused, r)
	return nil
}

func (a *auditor) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.served)
}

// cards checks a card as node does: it verifies and must carry the pinned
// agency key.
type cards struct{ keys pins }

func (c cards) Check(ctx context.Context, agency string, b []byte) ([]EpochKey, error) {
	cd, err := card.Decode(b)
	if err != nil {
		return nil, err
	}
	if err := cd.Verify(now); err != nil {
		return nil, err
	}
	if cd.Agency != agency || !cd.Key.Equal(c.keys[agency]) {
		return nil, card.ErrOtherKey
	}
	var out []EpochKey
	for _, k := range cd.EpochKeys {
		out = append(out, EpochKey{Kind: k.Kind, Epoch: k.Epoch, Reach: k.Reach, Key: k.Key})
	}
	return out, nil
}

// signedCard returns DE's card listing pub as the key of (kind, epoch,
// open) and more as the keys of other reaches, signed with priv.
func signedCard(t testing.TB, priv ed25519.PrivateKey, pub *psi.PublicKey, more ...*psi.Responder) []byte {
	t.Helper()
	kb, err := pub.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	eks := []card.EpochKey{{Epoch: epoch, Kind: kind, Reach: ReachOpen, Key: kb}}
	for _, r := range more {
		b, err := r.PublicKey().MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		eks = append(eks, card.EpochKey{Epoch: epoch, Kind: kind, Reach: r.Reach(), Key: b})
	}
	c := &card.Card{
		Version: card.Version, Agency: "DE", Name: "Bundeskriminalamt",
		Replicas:  []card.Replica{{PeerID: "12D3KooWAbCdEfGhJkLmNoPqRsTuVwXyZ1234567890abcdefghi", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}}},
		EpochKeys: eks,
		Issued:    now.Add(-time.Hour), Expires: now.Add(30 * 24 * time.Hour), Sequence: 1,
	}
	if err := c.Sign(priv); err != nil {
		t.Fatalf("sign card: %v", err)
	}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func phone(i int) []byte { return ident.Input(ident.Phone, fmt.Sprintf("+4915%09d", i)) }

func phones(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, phone(i))
	}
	return out
}

// world is one responder/owner (DE) with its server, and a querier client
// (FR).
type world struct {
	t       testing.TB
	psi     *psi.Responder // the open reach's key
	reach   map[string]*psi.Responder
	evs     map[string]*counting
	ev      *counting // evs[ReachOpen]
	adm     *admitter
	sets    *sets
	auth    authorizer
	aud     *auditor
	server  *Server
	client  *Client
	opener  *pipeOpener
	outputs [][]byte // precomputed outputs of the holdings
}

// Reaches of the test world's holdings: phones [0, holdings) are open,
// phones victimFrom + [0, 10) victims, witnessFrom + [0, 10) witnesses.
const (
	victimFrom  = 900_000
	witnessFrom = 950_000
)

// newWorld builds DE holding phones [0, holdings) in an open base set of
// version 1, ten victims' and ten witnesses' phones in sets of their
// reaches, and its server; mutate may change the server config first.
func newWorld(t testing.TB, holdings int, mutate func(*ServerConfig)) *world {
	t.Helper()
	var seed psi.Seed
	seed[0] = 9
	w := &world{t: t, reach: map[string]*psi.Responder{}, evs: map[string]*counting{}, adm: &admitter{},
		aud: &auditor{}, auth: authorizer{kind: true}}
	w.sets = &sets{holdings: map[string]*Holding{}}
	held := map[string][][]byte{ReachOpen: phones(0, holdings), ReachVictim: phones(victimFrom, victimFrom+10),
		ReachWitness: phones(witnessFrom, witnessFrom+10)}
	for _, reach := range Reaches {
		r, err := psi.NewResponder(psi.ResponderConfig{Seed: seed, Agency: "DE", Kind: kind, Epoch: epoch, Reach: reach})
		if err != nil {
			t.Fatal(err)
		}
		outs, err := r.Precompute(held[reach])
		if err != nil {
			t.Fatal(err)
		}
		es, err := r.EncodeSet(1, outs)
		if err != nil {
			t.Fatal(err)
		}
		base, err := es.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		w.reach[reach], w.evs[reach] = r, &counting{r: r}
		w.sets.holdings[holdingKey(kind, reach)] = &Holding{Base: 1, Segments: [][]byte{base}}
		if reach == ReachOpen {
			w.outputs = outs
		}
	}
	w.psi, w.ev = w.reach[ReachOpen], w.evs[ReachOpen]
	w.sets.card = signedCard(t, keyDE, w.psi.PublicKey(), w.reach[ReachVictim], w.reach[ReachWitness])
	cfg := ServerConfig{
		Agency: "DE", Signer: keyDE, Keys: allPins(), Admitter: w.adm,
		Responders: &responders{evs: w.evs, version: 1}, Sets: w.sets,
		SyncAuthorizer: w.auth, SyncAuditor: w.aud,
		Clock: func() time.Time { return now }, Rand: detReader(1), Timeout: 10 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	var err error
	if w.server, err = NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	w.opener = newPipeOpener(t, w.server, peerFR)
	w.client = newClient(t, keyFR, func() time.Time { return now })
	return w
}

func newClient(t testing.TB, signer ed25519.PrivateKey, clock func() time.Time) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Agency: "FR", Signer: signer, Keys: allPins(),
		Cards: cards{keys: allPins()}, Clock: clock, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keys returns DE's public keys of the given reaches, as FR pins them.
func (w *world) keys(reaches ...string) map[string]*psi.PublicKey {
	out := map[string]*psi.PublicKey{}
	for _, r := range reaches {
		out[r] = w.reach[r].PublicKey()
	}
	return out
}

// querier returns FR's querier of DE's open key.
func (w *world) querier() *psi.Querier {
	q, err := psi.NewQuerier(psi.QuerierConfig{Key: w.psi.PublicKey(), Kind: kind, Epoch: epoch, Dummy: ident.DummyInput})
	if err != nil {
		w.t.Fatal(err)
	}
	return q
}

// pipeOpener opens in-memory streams served by a Server as from, the way
// node's host hands them over: the handler runs on its own goroutine and
// the stream is closed when it returns.
type pipeOpener struct {
	server *Server
	from   Peer
	wg     sync.WaitGroup
	// wrap, when set, wraps the querier's end (to tamper with bytes).
	wrap func(Stream) Stream
}

func newPipeOpener(t testing.TB, s *Server, from Peer) *pipeOpener {
	o := &pipeOpener{server: s, from: from}
	t.Cleanup(o.wg.Wait)
	return o
}

func (o *pipeOpener) Open(ctx context.Context, peer PeerID, proto string) (Stream, error) {
	a, b := net.Pipe()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		st := pipeStream{b}
		o.server.Handle(context.Background(), o.from, proto, st)
		_ = st.Close()
	}()
	var st Stream = pipeStream{a}
	if o.wrap != nil {
		st = o.wrap(st)
	}
	return st, nil
}

// errOpener fails every Open.
type errOpener struct{}

func (errOpener) Open(ctx context.Context, peer PeerID, proto string) (Stream, error) {
	return nil, errors.New("dial: connection refused")
}

// pipePair returns the two ends of an in-memory stream.
func pipePair() (Stream, Stream) {
	a, b := net.Pipe()
	return pipeStream{a}, pipeStream{b}
}

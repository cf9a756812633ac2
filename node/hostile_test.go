package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/policy"
)

// attack is one row of the hostile-partner harness: what the hostile peer
// does, what it must get back, and how many ledger entries about it the
// target may write.
type attack struct {
	name string
	run  func() outcomes
	// want is the outcomes' String(), or a regular expression of it when
	// it starts with "^".
	want string
	// entries is the exact number of entries about the hostile partner
	// the attack writes on the target's ledger; alarms the exact number of
	// witness_alarm entries, about any partner. bounded makes both upper
	// bounds (a flood).
	entries int
	alarms  int
	bounded bool
}

// hostileLimits gives TH a small e-mail budget on the target: two queries
// of four, then a flood over budget.
var hostileLimits = strings.Replace(matchLimits, "  TH:\n",
	"  TH:\n    email: {max_query: 8, daily_budget: 8, disclosure: hits, handling: H2}\n", 1)

// hostileFlood is how many requests or streams each flood sends.
const hostileFlood = 200

// TestHostilePartner runs every attack a pinned partner can make on the
// match, sync and witness protocols against a real replica (DE), from a real libp2p
// peer with a real pinned card (TH's node and host), while an honest
// partner (GB) keeps querying. Per attack it checks and reports the
// outcome and the ledger entries written; over the run, that GB's median
// latency stays within hostileLatencyRatio of what it was before, that a
// flood writes a bounded number of entries and bumps the throttle counter,
// and that goroutines, heap and open streams go back to where they were.
func TestHostilePartner(t *testing.T) {
	if testing.Short() {
		t.Skip("three agencies and every attack: slow")
	}
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	de := startAgency(t, "DE", 1, logs)
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 1, logs)
	de.hold("phone", "GB", append([]string{"+44 7700 900101"}, fillers(30000, 30)...)...)
	de.hold("email", "", "x1@example.org", "x2@example.org")
	th.hold("phone", "GB", fillers(40000, 4)...)
	de.pin(gb)
	de.pin(th)
	gb.pin(de)
	th.pin(de)
	target := de.leader()
	v, err := target.policy.ApplyPolicy(ctx, "user:admin", policy.Files{PolicyName: "policy.cedar",
		Policy: []byte(matchPolicy + matchAdmins), LimitsName: "limits.yaml", Limits: []byte(hostileLimits)},
		target.users.policyManagers)
	if err != nil {
		t.Fatalf("DE ApplyPolicy: %v", err)
	}
	until(t, "DE policy in force", func() bool { return target.Policy().Version() == v })
	h := newHostilePeer(t, th, de, target)
	gbKey := gb.leader().cards.cfg.Key

	// The honest partner: GB asks DE about one number DE holds and one it
	// does not.
	honestQ := gb.leader()
	values := canon(t, "phone", "GB", "07700 900101", "07700 900999")
	honest := func() (time.Duration, error) {
		start := time.Now()
		res, err := honestQ.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "phone", Case: "OP-GB",
			Basis: "Art. 10", Offence: "thb", Purpose: "honest", Values: values})
		d := time.Since(start)
		if err != nil {
			return d, err
		}
		p := partOf(t, res, "DE")
		if p.Outcome == httpapi.OutcomeUnavailable {
			return d, fmt.Errorf("DE part %+v: %w", p, errHonestUnavailable)
		}
		if p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, []int{0}) {
			return d, fmt.Errorf("DE part %+v; want a hit on line 0", p)
		}
		return d, nil
	}
	var before []time.Duration
	for range 9 {
		d, err := honest()
		if err != nil {
			t.Fatalf("honest query before the attacks: %v", err)
		}
		before = append(before, d)
	}
	base := measure(target)

	// GB keeps querying, paced, through every attack.
	var (
		mu        sync.Mutex
		during    []time.Duration
		honestErr []error
		stop      = make(chan struct{})
		done      = make(chan struct{})
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range 2000 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			d, err := honest()
			mu.Lock()
			during = append(during, d)
			if err != nil {
				honestErr = append(honestErr, err)
			}
			mu.Unlock()
		}
	}()

	one := func(s string) outcomes { return outcomes{s: 1} }
	match := func(mutate func(*wire.MatchRequest)) func() outcomes {
		return func() outcomes { return one(h.sendMatch(h.match("phone", 2, mutate, nil))) }
	}
	rawMatch := func(b []byte) func() outcomes {
		return func() outcomes { return one(h.send(exchange.ProtoMatch, b)) }
	}
	rawSync := func(b []byte) func() outcomes {
		return func() outcomes { return one(h.send(exchange.ProtoSync, b)) }
	}
	garbage := make([]byte, 64)
	_, _ = rand.Read(garbage)
	valid := h.match("phone", 2, nil, nil)
	var replayed *wire.MatchRequest

	attacks := []attack{
		// Frames that do not frame or decode: reset, nothing recorded.
		{name: "match/truncated frame", run: rawMatch(append(frameHeader(1000), garbage[:10]...)), want: "reset"},
		{name: "match/oversized frame", run: rawMatch(append(frameHeader(wire.MaxMatchRequest+1), garbage...)), want: "reset"},
		{name: "match/non-minimal length", run: rawMatch([]byte{0x80, 0x00}), want: "reset"},
		{name: "match/malformed message", run: rawMatch(framed(garbage)), want: "reset"},
		{name: "match/trailing byte in frame", run: rawMatch(framed(append(h.match("phone", 2, nil, nil).Marshal(), 0))), want: "reset"},
		{name: "match/frames at the size limit ×8", run: func() outcomes {
			return parallel(8, 8, func(int) string {
				big := make([]byte, wire.MaxMatchRequest-64)
				_, _ = rand.Read(big)
				return h.send(exchange.ProtoMatch, framed(big))
			})
		}, want: "reset ×8"},
		// Signed requests the exchange refuses: one denial each.
		{name: "match/identity element", run: match(func(m *wire.MatchRequest) {
			eb := slices.Clone(m.EvalRequest)
			off := 2 + 1 + len("phone") + 8 + 4 + 4
			clear(eb[off : off+32])
			withRequestBatch(m, eb)
		}), want: "denied:bad_request", entries: 1},
		{name: "match/stale timestamp", run: match(func(m *wire.MatchRequest) { m.TimeUnixMs -= uint64(10 * time.Minute / time.Millisecond) }),
			want: "denied:clock_skew", entries: 1},
		{name: "match/future timestamp", run: match(func(m *wire.MatchRequest) { m.TimeUnixMs += uint64(10 * time.Minute / time.Millisecond) }),
			want: "denied:clock_skew", entries: 1},
		{name: "match/signed by another agency", run: func() outcomes {
			return one(h.sendMatch(h.match("phone", 2, nil, gbKey)))
		}, want: "denied:bad_signature", entries: 1},
		{name: "match/another agency's request", run: func() outcomes {
			return one(h.sendMatch(h.match("phone", 2, func(m *wire.MatchRequest) { m.Querier = "GB" }, gbKey)))
		}, want: "denied:wrong_peer", entries: 1},
		{name: "match/another responder", run: match(func(m *wire.MatchRequest) { m.Responder = "GB" }), want: "denied:wrong_responder", entries: 1},
		{name: "match/padded size over the maximum", run: match(func(m *wire.MatchRequest) { m.PaddedSize = exchange.MaxBatch + 1 }),
			want: "denied:too_large", entries: 1},
		{name: "match/batch digest", run: match(func(m *wire.MatchRequest) { m.BatchSHA256[0] ^= 1 }), want: "denied:bad_batch", entries: 1},
		{name: "match/unknown epoch", run: match(func(m *wire.MatchRequest) {
			m.Epoch = h.epoch + 7
			withRequestBatch(m, h.batch("phone", h.epoch+7, 2))
		}), want: "denied:unknown_epoch", entries: 1},
		{name: "match/unknown kind", run: match(func(m *wire.MatchRequest) {
			m.Kind = "zzz"
			withRequestBatch(m, h.batch("zzz", h.epoch, 2))
		}), want: "denied:bad_request", entries: 1},
		// Replays: a new signature over a spent ID is the ledger's to
		// refuse; the same signed bytes again, which the ledger would admit
		// as a retry of one command, the replica that evaluated them
		// refuses itself.
		{name: "match/replayed ID, new signature", run: func() outcomes {
			replayed = h.match("phone", 2, nil, nil)
			o := one(h.sendMatch(replayed))
			again := *replayed
			again.TimeUnixMs++
			again.Signature = ed25519.Sign(h.key, again.SignedBytes())
			o[h.sendMatch(&again)]++
			return o
		}, want: "denied:replay, ok", entries: 2},
		{name: "match/replayed bytes", run: func() outcomes { return one(h.sendMatch(replayed)) }, want: "denied:replay", entries: 1},
		{name: "match/bytes after the request", run: rawMatch(append(framed(valid.Marshal()), garbage...)), want: "ok", entries: 1},

		// Sync: the same, and floods of kinds.
		{name: "sync/truncated frame", run: rawSync(append(frameHeader(1000), garbage[:10]...)), want: "reset"},
		{name: "sync/oversized frame", run: rawSync(append(frameHeader(wire.MaxSyncRequest+1), garbage...)), want: "reset"},
		{name: "sync/malformed message", run: rawSync(framed(garbage)), want: "reset"},
		{name: "sync/trailing byte in frame", run: rawSync(framed(append(h.syncReq("phone", nil, nil).Marshal(), 0))), want: "reset"},
		{name: "sync/stale timestamp", run: func() outcomes {
			return one(h.sendSync(h.syncReq("phone", func(m *wire.SyncRequest) { m.TimeUnixMs -= uint64(10 * time.Minute / time.Millisecond) }, nil)))
		}, want: "denied:clock_skew", entries: 1},
		{name: "sync/future timestamp, again", run: func() outcomes {
			return one(h.sendSync(h.syncReq("phone", func(m *wire.SyncRequest) { m.TimeUnixMs += uint64(10 * time.Minute / time.Millisecond) }, nil)))
		}, want: "denied:clock_skew", entries: 0},
		{name: "sync/signed by another agency", run: func() outcomes { return one(h.sendSync(h.syncReq("phone", nil, gbKey))) },
			want: "denied:bad_signature", entries: 1},
		{name: "sync/unknown epoch", run: func() outcomes {
			return one(h.sendSync(h.syncReq("phone", func(m *wire.SyncRequest) { m.Epoch = h.epoch + 7 }, nil)))
		}, want: "denied:unknown_epoch", entries: 1},
		{name: "sync/unknown kind", run: func() outcomes { return one(h.sendSync(h.syncReq("zzz", nil, nil))) },
			want: "denied:bad_request", entries: 1},
		// A kind that is no kind is recorded as none: the refusal above
		// stands for every one of them.
		{name: "sync/five more unknown kinds", run: func() outcomes {
			o := outcomes{}
			for i := range 5 {
				o[h.sendSync(h.syncReq(fmt.Sprintf("zz%d", i), nil, nil))]++
			}
			return o
		}, want: "denied:bad_request ×5", entries: 0},

		// Cards: a re-pin that would take another agency's replica, or
		// carry a peer ID that does not decode, is refused before it
		// commits, and the allow set keeps every partner.
		{name: "sync/re-pin with another agency's peer ID", run: func() outcomes {
			return one(h.repin(target, gb.leader().host.ID().String()))
		}, want: "re-pin refused, allow set intact"},
		{name: "sync/re-pin with a peer ID that does not decode", run: func() outcomes {
			return one(h.repin(target, "not-a-peer-id"))
		}, want: "re-pin refused, allow set intact"},
	}
	// The hostile peer as responder and owner, answering DE's own queries
	// and syncs.
	attacks = append(attacks, h.responderAttacks(target, gbKey)...)
	witnessRows, witnessFloods := h.witnessAttacks(gb.leader(), gbKey)
	attacks = append(attacks, witnessRows...)
	attacks = append(attacks, []attack{
		// Floods, last: each is throttled once the partner's refusals pass
		// the server's budget.
		{name: "match/streams left open", run: func() outcomes { return h.streamFlood(target, base) }, want: "^held \\d+ of 200 streams, within the limits$"},
		{name: "match/streams that never negotiate", run: func() outcomes { return h.rawFlood(target, 128, honest) },
			want: "honest query answered ×3", entries: 1},
		{name: "match/streams from 16 replicas", run: func() outcomes { return h.replicaFlood(target, 64, honest) },
			want: "honest query answered ×3", entries: 1},
		{name: "match/flood over budget", run: func() outcomes {
			return parallel(hostileFlood, 8, func(int) string { return h.sendMatch(h.match("email", 4, nil, nil)) })
		}, want: "^(denied:partner_budget( ×\\d+)?, )?ok ×2, reset ×\\d+$", entries: 2 + exchange.DefaultRefusalBurst, bounded: true},
		{name: "match/flood of bad signatures", run: func() outcomes {
			return parallel(hostileFlood, 8, func(int) string { return h.sendMatch(h.match("phone", 2, nil, gbKey)) })
		}, want: "^(denied:bad_signature( ×\\d+)?, )?reset ×\\d+$", entries: exchange.DefaultRefusalBurst, bounded: true},
		// Sync refusals are not throttled (a partner's sync loop meets them
		// as routine); they are recorded once per kind and reason, and a
		// kind that is no kind, or that no signature covers, as none.
		{name: "sync/flood of unknown kinds", run: func() outcomes {
			return parallel(hostileFlood, 8, func(i int) string { return h.sendSync(h.syncReq(fmt.Sprintf("k%03d", i), nil, nil)) })
		}, want: "denied:bad_request ×200", entries: 0},
		{name: "sync/flood of bad signatures, random kinds", run: func() outcomes {
			return parallel(hostileFlood, 8, func(i int) string { return h.sendSync(h.syncReq(fmt.Sprintf("s%03d", i), nil, gbKey)) })
		}, want: "denied:bad_signature ×200", entries: 0},
	}...)
	attacks = append(attacks, witnessFloods...)

	type row struct {
		name, got       string
		entries, alarms int
		took            time.Duration
	}
	var rows []row
	throttledBefore, witnessBefore := throttled(t, target, "TH", "[a-z]+"), throttled(t, target, "TH", "witness")
	for _, a := range attacks {
		n0, _ := partnerEntries(t, target, "TH")
		w0 := alarmEntries(t, target)
		start := time.Now()
		got := a.run().String()
		took := time.Since(start)
		// Refusals are recorded before the answer is sent: the count is
		// final once the attack returns.
		n1, _ := partnerEntries(t, target, "TH")
		w1 := alarmEntries(t, target)
		rows = append(rows, row{a.name, got, n1 - n0, w1 - w0, took})
		ok := got == a.want
		if strings.HasPrefix(a.want, "^") {
			ok = regexp.MustCompile(a.want).MatchString(got)
		}
		if !ok {
			t.Errorf("%s: outcome %q; want %q", a.name, got, a.want)
		}
		limit, alarms := a.entries, a.alarms
		if a.bounded {
			// The refusal budget refills while the flood runs.
			refill := int(took.Seconds()*exchange.DefaultRefusalRate) + 1
			limit, alarms = limit+refill, alarms+refill
			if n1-n0 > limit {
				t.Errorf("%s: %d ledger entries; want at most %d", a.name, n1-n0, limit)
			}
			if w1-w0 > alarms {
				t.Errorf("%s: %d witness alarm entries; want at most %d", a.name, w1-w0, alarms)
			}
		} else {
			if n1-n0 != limit {
				t.Errorf("%s: %d ledger entries; want %d", a.name, n1-n0, limit)
			}
			if w1-w0 != alarms {
				t.Errorf("%s: %d witness alarm entries; want %d", a.name, w1-w0, alarms)
			}
		}
		settle(t, target, base, a.name)
	}
	close(stop)
	<-done
	if n := throttled(t, target, "TH", "[a-z]+") - throttledBefore; n == 0 {
		t.Errorf("xborder_exchange_throttled_total of TH did not move over %d floods", 3)
	}
	if n := throttled(t, target, "TH", "witness") - witnessBefore; n == 0 {
		t.Errorf(`xborder_exchange_throttled_total{proto="witness"} of TH did not move over the witness floods`)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%-48s  %-44s  %s  %s\n", "attack", "outcome", "entries", "alarms")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-48s  %-44s  %7d  %d\n", r.name, r.got, r.entries, r.alarms)
	}
	t.Logf("hostile partner TH against DE:\n%s", b.String())

	mu.Lock()
	defer mu.Unlock()
	// Every query is answered right; under the race detector on a loaded
	// machine DE's ledger may miss its write deadline now and then
	// (unavailable), which no attack below causes on its own: a few of
	// those are logged, not failed. The attacks that did shut GB out (the
	// stream floods) are checked strictly in their own rows.
	unavailable := 0
	for _, err := range honestErr {
		if errors.Is(err, errHonestUnavailable) && unavailable < max(1, len(during)/50) {
			unavailable++
			t.Logf("GB's query during the attacks: %v", err)
			continue
		}
		t.Errorf("GB's query during the attacks (%d of %d failed): %v", len(honestErr), len(during), err)
	}
	mb, md := median(before), median(during)
	t.Logf("GB's median latency: %v before (%d queries), %v during the attacks (%d queries)", mb, len(before), md, len(during))
	if len(during) < 5 {
		t.Errorf("GB asked only %d times during the attacks", len(during))
	}
	if md > hostileLatencyRatio*mb+hostileLatencySlack {
		t.Errorf("GB's median latency during the attacks %v; want at most %d × %v + %v", md, hostileLatencyRatio, mb, hostileLatencySlack)
	}
	after := settle(t, target, base, "the attacks")
	t.Logf("DE before the attacks: %v; after: %v", base, after)
}

// The honest partner's median latency during the attacks stays within
// hostileLatencyRatio times its median before, plus hostileLatencySlack
// (two shared cores: the attacks' own crypto and Raft writes compete; under
// the race detector on a loaded machine the ratio came to 4.6).

// errHonestUnavailable: DE answered GB's query unavailable.
var errHonestUnavailable = errors.New("honest query unavailable")

const (
	hostileLatencyRatio = 5
	hostileLatencySlack = time.Second
)

// parallel runs f(0..n-1) on workers goroutines and tallies the outcomes.
func parallel(n, workers int, f func(i int) string) outcomes {
	var mu sync.Mutex
	o := outcomes{}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := f(i)
				mu.Lock()
				o[s]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return o
}

// throttled reads xborder_exchange_throttled_total of partner, summed
// over the protocols proto (a regular expression) matches, from n's
// metrics.
func throttled(t *testing.T, n *Node, partner, proto string) int {
	t.Helper()
	_, body := get(t, n.APIURL()+"/metrics")
	re := regexp.MustCompile(`xborder_exchange_throttled_total\{partner="` + partner + `",proto="` + proto + `"\} (\d+)`)
	total := 0
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		c, _ := strconv.Atoi(m[1])
		total += c
	}
	return total
}

// streamFlood opens hostileFlood match streams to the target at once and
// writes one byte on each, so that the target's handlers wait for the
// rest; checks while they are held that the target's streams and
// goroutines stay within the host's limits; then resets them all.
func (h *hostilePeer) streamFlood(target *Node, base resources) outcomes {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		held []exchange.Stream
	)
	parallel(hostileFlood, 16, func(int) string {
		st, err := h.node.host.Open(ctx, h.to, exchange.ProtoMatch)
		if err != nil {
			return "refused"
		}
		if _, err := st.Write([]byte{0x05}); err != nil {
			_ = st.Reset()
			return "reset"
		}
		mu.Lock()
		held = append(held, st)
		mu.Unlock()
		return "held"
	})
	// The peer's inbound stream limit (64) bounds what the target holds.
	var r resources
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = measure(target)
		if r.streams <= base.streams+64+hostileStreamSlack && r.goroutines <= base.goroutines+64*4+hostileGoroutineSlack {
			break
		}
		if time.Now().After(deadline) {
			h.t.Errorf("during the stream flood the target holds %v; before it held %v", r, base)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	live := 0
	for _, st := range held {
		// A stream the target reset fails to write.
		if _, err := st.Write([]byte{0}); err == nil {
			live++
		}
		_ = st.Reset()
	}
	h.t.Logf("stream flood: %d opened by the hostile side, %d still open at the target's end; target held %v", len(held), live, r)
	if live > 64 {
		return outcomes{fmt.Sprintf("held %d of %d streams, over the peer limit of 64", live, hostileFlood): 1}
	}
	return outcomes{fmt.Sprintf("held %d of %d streams, within the limits", live, hostileFlood): 1}
}

// repin serves the target, on the hostile node's sync protocol, a newer
// card of the hostile agency whose first replica has peer ID id, makes
// the target sync, and reports whether the target refused it and kept its
// allow set. The hostile node serves its real sync again afterwards.
func (h *hostilePeer) repin(target *Node, id string) string {
	h.t.Helper()
	pinned, ok := target.cards.Pins()[h.agency]
	if !ok {
		h.t.Fatalf("%s has not pinned %s", h.target, h.agency)
	}
	evil := *pinned
	evil.Replicas = slices.Clone(pinned.Replicas)
	evil.Replicas[0] = card.Replica{PeerID: id, Addrs: pinned.Replicas[0].Addrs}
	evil.Sequence++
	if err := evil.Sign(h.key); err != nil {
		h.t.Fatalf("sign card: %v", err)
	}
	cb, err := evil.Encode()
	if err != nil {
		h.t.Fatalf("encode card: %v", err)
	}
	h.node.host.Handle(exchange.ProtoSync, func(ctx context.Context, from exchange.Peer, st exchange.Stream) {
		b, err := wire.ReadFrame(wire.NewReader(st), wire.MaxSyncRequest)
		if err != nil {
			_ = st.Reset()
			return
		}
		m, err := wire.UnmarshalSyncRequest(b)
		if err != nil {
			_ = st.Reset()
			return
		}
		a := &wire.SyncAnswer{ID: m.ID, TimeUnixMs: uint64(time.Now().UnixMilli()), Owner: h.agency, Querier: m.Querier,
			Status: wire.StatusOK, Card: cb}
		a.Signature = ed25519.Sign(h.key, a.SignedBytes())
		_ = wire.WriteFrame(st, a.Marshal())
		_ = st.CloseWrite()
	})
	defer h.node.host.Handle(exchange.ProtoSync, h.node.xsrv.HandleSync)

	ps := target.partnerSets
	pc := ps.partnerCopy(h.agency, "phone", reachOpen)
	pc.mu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = ps.syncCopy(ctx, h.agency, "phone", reachOpen, pc, 1)
	cancel()
	pc.mu.Unlock()
	now := target.cards.Pins()[h.agency]
	switch {
	case err == nil:
		return "re-pin accepted"
	case now == nil || now.Sequence != pinned.Sequence:
		return "re-pin committed"
	}
	// Every replica of every pin is still admitted.
	for cc, c := range target.cards.Pins() {
		for _, r := range c.Replicas {
			if got, ok := allows(target, r.PeerID); !ok || got != cc {
				return fmt.Sprintf("allow set lost %s of %s", r.PeerID, cc)
			}
		}
	}
	return "re-pin refused, allow set intact"
}

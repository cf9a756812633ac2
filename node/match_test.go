package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
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
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/internal/wire"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/psi"
)

// fillers returns n phone numbers of the holder's own, none planted.
func fillers(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+44 7700 9%05d", from+i)
	}
	return out
}

// byRequest returns the entries of n's ledger under request ID id.
func byRequest(t *testing.T, n *Node, id string) []ledger.Entry {
	t.Helper()
	es, err := n.Audit().Entries(context.Background(), ledger.Filter{})
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	var out []ledger.Entry
	for _, e := range es {
		if e.RequestID == id {
			out = append(out, e)
		}
	}
	return out
}

// hasEntry reports whether es holds an entry of type typ and outcome out.
func hasEntry(es []ledger.Entry, typ ledger.Type, out ledger.Outcome) *ledger.Entry {
	for i := range es {
		if es[i].Type == typ && es[i].Outcome == out {
			return &es[i]
		}
	}
	return nil
}

// partOf returns the part of res for agency.
func partOf(t *testing.T, res httpapi.QueryResult, agency string) httpapi.PartnerResult {
	t.Helper()
	for _, p := range res.Partners {
		if p.Agency == agency {
			return p
		}
	}
	t.Fatalf("result %+v has no part for %s", res, agency)
	return httpapi.PartnerResult{}
}

// stageCount reads a match stage histogram's count from n's metrics.
func stageCount(t *testing.T, n *Node, direction, stage string) int {
	t.Helper()
	_, body := get(t, n.APIURL()+"/metrics")
	re := regexp.MustCompile(`xborder_match_stage_seconds_count\{direction="` + direction + `",stage="` + stage + `"\} (\d+)`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	c, _ := strconv.Atoi(m[1])
	return c
}

// TestQueryFederation runs GB's queries against TH (one replica) and DE
// (three replicas) with planted overlaps: exact hits per partner from
// differently spelled inputs, matching entries on both ledgers, no
// identifier anywhere it must not be, budgets across a leader change, and
// a DE without quorum refusing both ways until a replica returns.
func TestQueryFederation(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 1, logs)
	de := startAgency(t, "DE", 3, logs)
	rec := &recorder{}
	for _, n := range append(th.running(), de.running()...) {
		rec.record(n)
	}

	// Holders spell their numbers their way; A is TH's, B both, C DE's.
	thPhones := append([]string{"+44 7700 900101", "+44 7700 900202"}, fillers(10000, 40)...)
	dePhones := append([]string{"07700900202", "+44 (7700) 900303"}, fillers(20000, 40)...)
	deMails := []string{"x1@example.org", "x2@example.org"}
	th.hold("phone", "GB", thPhones...)
	de.hold("phone", "GB", dePhones...)
	de.hold("email", "", deMails...)
	gb.pin(th)
	gb.pin(de)
	th.pin(gb)
	de.pin(gb)

	q := gb.leader()
	values := canon(t, "phone", "GB", "07700 900101", "0044 7700 900202", "+447700900303", "07700 900999", "+44-7700-900202")
	req := httpapi.QueryRequest{Kind: "phone", Case: "OP-1", Basis: "Art. 10", Offence: "thb", Purpose: "identify recruiters", Values: values}
	res, err := q.querier.Query(ctx, ivan, req)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	want := map[string][]int{"TH": {0, 1, 4}, "DE": {1, 2, 4}}
	// Lines 1 and 4 spell one number: two distinct identifiers hit each.
	wantCount := map[string]int{"TH": 2, "DE": 2}
	if len(res.Partners) != 2 || res.PaddedSize != 4 || res.Values != 4 {
		t.Fatalf("Query = %+v; want two partners, 4 distinct values padded to 4", res)
	}
	for cc, hits := range want {
		p := partOf(t, res, cc)
		if p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, hits) || p.HitCount != wantCount[cc] {
			t.Errorf("%s part = %+v; want hits %v, hit_count %d", cc, p, hits, wantCount[cc])
		}
		// Both ledgers hold the exchange under the request ID.
		mine := byRequest(t, q, p.RequestID)
		out, result := hasEntry(mine, ledger.TypeMatchOut, ledger.OutcomeOK), hasEntry(mine, ledger.TypeMatchResult, ledger.OutcomeOK)
		if out == nil || result == nil || result.HitCount != uint64(wantCount[cc]) || result.Digest == (ledger.Digest{}) ||
			out.PaddedSize != 4 || out.Body.CaseRef != "OP-1" || out.Partner != cc {
			t.Errorf("GB ledger under %s = %+v; want match_out and match_result with hit_count %d", p.RequestID, mine, wantCount[cc])
		}
		if p.OutboundIndex == nil || p.ResultIndex == nil || *p.OutboundIndex != out.Index || *p.ResultIndex != result.Index {
			t.Errorf("%s part indexes %v %v; want %d %d", cc, p.OutboundIndex, p.ResultIndex, out.Index, result.Index)
		}
		partner := th
		if cc == "DE" {
			partner = de
		}
		for _, n := range partner.running() {
			waitFor(t, cc+" replica applied the admit", func() bool {
				return hasEntry(byRequest(t, n, p.RequestID), ledger.TypeMatchIn, ledger.OutcomeOK) != nil
			})
			in := hasEntry(byRequest(t, n, p.RequestID), ledger.TypeMatchIn, ledger.OutcomeOK)
			if in.Partner != "GB" || in.Kind != "phone" || in.PaddedSize != 4 || in.HitCount != 0 ||
				in.RequestSigDigest == (ledger.Digest{}) || in.Body.CaseRef != "OP-1" {
				t.Errorf("%s match_in = %+v; want GB's phone query of 4, its signature digest, no hit count", cc, in.Header)
			}
		}
	}

	// Budgets: DE lets GB evaluate 8 padded emails a day: two queries of 4.
	mails := canon(t, "email", "", "X1@Example.org", "nobody@example.org", "z@example.net")
	mreq := httpapi.QueryRequest{Kind: "email", Case: "OP-2", Basis: "Art. 10", Offence: "thb", Purpose: "p", Partners: []string{"DE"}, Values: mails}
	for i := range 2 {
		r, err := q.querier.Query(ctx, ivan, mreq)
		if err != nil || partOf(t, r, "DE").Outcome != httpapi.OutcomeHits || !slices.Equal(partOf(t, r, "DE").Hits, []int{0}) {
			t.Fatalf("email query %d = %+v, %v; want one hit", i+1, r, err)
		}
	}
	overBudget := func(what string) {
		t.Helper()
		r, err := q.querier.Query(ctx, ivan, mreq)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		p := partOf(t, r, "DE")
		if p.Outcome != httpapi.OutcomeDenied || p.Reason != "partner_budget" || len(p.Hits) != 0 {
			t.Fatalf("%s: DE part = %+v; want denied for partner_budget", what, p)
		}
		if hasEntry(byRequest(t, q, p.RequestID), ledger.TypeMatchResult, ledger.OutcomeDeniedBudget) == nil {
			t.Errorf("%s: GB ledger has no denied_budget result under %s", what, p.RequestID)
		}
		l := de.leader()
		if hasEntry(byRequest(t, l, p.RequestID), ledger.TypeDenial, ledger.OutcomeDeniedBudget) == nil {
			t.Errorf("%s: DE ledger has no budget denial under %s", what, p.RequestID)
		}
	}
	overBudget("third email query")

	// A leader change on DE resets no budget.
	old := de.leader()
	for i, n := range de.nodes {
		if n == old {
			de.stop(i)
		}
	}
	if l := de.leader(); l == old {
		t.Fatal("DE leader did not change")
	}
	overBudget("email query after DE's leader change")

	// Two of DE's three replicas stopped: DE refuses both ways and
	// evaluates nothing; TH still answers GB.
	var last *Node
	stopped := -1
	for i, n := range de.nodes {
		if n == nil {
			continue
		}
		if last == nil {
			last = n
			continue
		}
		de.stop(i)
		stopped = i
	}
	waitFor(t, "DE without quorum", func() bool { return !last.Audit().Status().Quorum })
	evals := stageCount(t, last, "in", "crypto")
	res, err = q.querier.Query(ctx, ivan, req)
	if err != nil {
		t.Fatalf("Query with DE down: %v", err)
	}
	if p := partOf(t, res, "TH"); p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, want["TH"]) {
		t.Errorf("TH part with DE down = %+v; want its hits", p)
	}
	if p := partOf(t, res, "DE"); p.Outcome != httpapi.OutcomeUnavailable || len(p.Hits) != 0 {
		t.Errorf("DE part without quorum = %+v; want unavailable", p)
	}
	if got := stageCount(t, last, "in", "crypto"); got != evals {
		t.Errorf("DE without quorum evaluated %d requests; want none", got-evals)
	}
	if _, err := last.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "phone", Case: "OP-9", Basis: "b", Offence: "thb",
		Purpose: "p", Values: values[:1]}); !errors.Is(err, httpapi.ErrUnavailable) {
		t.Errorf("DE queries without quorum: %v; want ErrUnavailable", err)
	}

	// One replica back: DE serves again.
	de.open(stopped)
	de.leader()
	res, err = q.querier.Query(ctx, ivan, req)
	if err != nil {
		t.Fatalf("Query after DE recovered: %v", err)
	}
	if p := partOf(t, res, "DE"); p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, want["DE"]) {
		t.Errorf("DE part after recovery = %+v; want hits %v", p, want["DE"])
	}

	// No identifier of the query or the holdings, nor its SHA-256, in any
	// stream byte, log line, metric or ledger entry.
	all := append(append(slices.Clone(values), canon(t, "phone", "GB", thPhones...)...), canon(t, "phone", "GB", dePhones...)...)
	sec := secrets("phone", all)
	for k, v := range secrets("email", append(mails, canon(t, "email", "", deMails...)...)) {
		sec[k] = v
	}
	mustNotContain(t, "match and sync streams", rec.Bytes(), sec)
	mustNotContain(t, "logs", logs.Bytes(), sec)
	for _, a := range []*agency{gb, th, de} {
		for _, n := range a.running() {
			_, m := get(t, n.APIURL()+"/metrics")
			mustNotContain(t, a.cc+" metrics", []byte(m), sec)
			es, err := n.Audit().Entries(ctx, ledger.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(es)
			mustNotContain(t, a.cc+" ledger", b, sec)
		}
	}
	if len(rec.Bytes()) == 0 || len(logs.Bytes()) == 0 {
		t.Error("nothing recorded: the search above proves nothing")
	}
}

// rawMatch sends m from n to replica to over the match protocol and reads
// the answer.
func rawMatch(t *testing.T, n, to *Node, m *wire.MatchRequest) (*wire.MatchAnswer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := n.Host().Open(ctx, exchange.PeerID(to.PeerID().String()), exchange.ProtoMatch)
	if err != nil {
		t.Fatalf("open match stream: %v", err)
	}
	defer st.Close()
	if err := wire.WriteFrame(st, m.Marshal()); err != nil {
		return nil, err
	}
	_ = st.CloseWrite()
	b, err := wire.ReadFrame(wire.NewReader(st), wire.MaxMatchAnswer)
	if err != nil {
		return nil, err
	}
	return wire.UnmarshalMatchAnswer(b)
}

// TestQueryTwoAgencies covers GB asking TH: hostile requests refused while
// TH keeps serving, the approval flow, and a key rotation in the middle of
// a run of queries.
func TestQueryTwoAgencies(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 1, logs)
	th := startAgency(t, "TH", 1, logs)
	th.hold("phone", "GB", append([]string{"+44 7700 900101", "+44 7700 900202"}, fillers(30000, 20)...)...)
	gb.pin(th)
	th.pin(gb)
	q, r := gb.leader(), th.leader()
	values := canon(t, "phone", "GB", "07700 900101", "07700 900999", "07700 900202")
	req := httpapi.QueryRequest{Kind: "phone", Case: "OP-3", Basis: "Art. 10", Offence: "thb", Purpose: "p", Values: values}
	check := func(what string, res httpapi.QueryResult, err error) httpapi.PartnerResult {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		p := partOf(t, res, "TH")
		if p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, []int{0, 2}) {
			t.Fatalf("%s: TH part = %+v; want hits [0 2]", what, p)
		}
		return p
	}
	res, err := q.querier.Query(ctx, ivan, req)
	check("first query", res, err)

	t.Run("metrics", func(t *testing.T) {
		// /metrics needs no token: it tells no one whether a partner
		// held anything, neither as a hit count nor as an outcome.
		_, body := get(t, q.APIURL()+"/metrics")
		if !strings.Contains(body, `xborder_match_queries_total{direction="out"`) {
			t.Fatalf("GB metrics count no outbound query:\n%s", body)
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.Contains(strings.ToLower(line), "hit") {
				t.Errorf("GB metrics line %q speaks of hits", line)
			}
		}
	})

	t.Run("hit count", func(t *testing.T) {
		// One number spelt twice is one identifier: both lines are hits,
		// the hit count (answer and result entry) counts it once, and it
		// never exceeds the distinct values.
		dup := req
		dup.Case = "OP-HITS"
		dup.Values = canon(t, "phone", "GB", "07700 900101", "+44 7700 900101", "07700 900202", "07700 900999")
		res, err := q.querier.Query(ctx, ivan, dup)
		if err != nil {
			t.Fatal(err)
		}
		p := partOf(t, res, "TH")
		if res.Values != 3 || !slices.Equal(p.Hits, []int{0, 1, 2}) || p.HitCount != 2 {
			t.Errorf("query of 3 distinct values, one spelt twice = %d values, TH part %+v; want 3 values, hits [0 1 2], hit_count 2", res.Values, p)
		}
		if e := hasEntry(byRequest(t, q, p.RequestID), ledger.TypeMatchResult, ledger.OutcomeOK); e == nil || e.HitCount != 2 {
			t.Errorf("result entry = %+v; want hit_count 2", e)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		epoch := r.epochs.currentEpoch()
		resp, _, ok := r.sets.responder("phone", epoch, reachOpen)
		if !ok {
			t.Fatal("TH has no phone responder")
		}
		qr, err := psi.NewQuerier(psi.QuerierConfig{Key: resp.PublicKey(), Kind: "phone", Epoch: epoch, Dummy: ident.DummyInput})
		if err != nil {
			t.Fatal(err)
		}
		_, ev, err := qr.Blind([][]byte{ident.Input(ident.Phone, values[0])}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		evb, _ := ev.MarshalBinary()
		build := func(id byte, at time.Time, batch []byte, padded uint64) *wire.MatchRequest {
			sum := sha256.Sum256(batch)
			m := &wire.MatchRequest{ID: bytes.Repeat([]byte{id}, 16), TimeUnixMs: uint64(at.UnixMilli()), Querier: "GB",
				Responder: "TH", Kind: "phone", Epoch: epoch, PaddedSize: padded, CaseRef: "OP-3", LegalBasis: "b",
				Offence: "thb", Purpose: "p", BatchSHA256: sum[:], EvalRequest: batch,
				Mode: exchange.ModeEnforcement, Reaches: []string{reachOpen}}
			m.Signature = ed25519.Sign(q.key, m.SignedBytes())
			return m
		}
		identity := bytes.Clone(evb)
		copy(identity[len(identity)-32:], make([]byte, 32))
		valid := build(1, time.Now(), evb, 1)
		badSig := build(4, time.Now(), evb, 1)
		badSig.Signature[0] ^= 1
		denials := len(byType(t, r, ledger.TypeDenial))
		for _, tc := range []struct {
			name   string
			m      *wire.MatchRequest
			status wire.Status
			reason string
		}{
			{"valid", valid, wire.StatusOK, ""},
			// The same signed bytes again, to the replica that evaluated
			// them, are a replay (issue 19's harness: they were evaluated
			// again at no budget). A querier retries on another replica,
			// where the ledger admits them as a retry of one command.
			{"identical resend", valid, wire.StatusDenied, "replay"},
			{"replayed ID", build(1, time.Now().Add(-time.Second), evb, 1), wire.StatusDenied, "replay"},
			{"stale time", build(2, time.Now().Add(-10*time.Minute), evb, 1), wire.StatusDenied, "clock_skew"},
			{"future time", build(3, time.Now().Add(10*time.Minute), evb, 1), wire.StatusDenied, "clock_skew"},
			{"bad signature", badSig, wire.StatusDenied, "bad_signature"},
			{"oversized batch", build(5, time.Now(), evb, 1<<20), wire.StatusDenied, "too_large"},
			{"identity element", build(6, time.Now(), identity, 1), wire.StatusDenied, "bad_request"},
		} {
			a, err := rawMatch(t, q, r, tc.m)
			if err != nil || a.Status != tc.status || a.Reason != tc.reason {
				t.Errorf("%s: answer %+v, %v; want status %v reason %q", tc.name, a, err, tc.status, tc.reason)
			}
		}
		// A malformed message resets the stream.
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		st, err := q.Host().Open(ctx, exchange.PeerID(r.PeerID().String()), exchange.ProtoMatch)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff})
		st.CloseWrite()
		if b, err := wire.ReadFrame(wire.NewReader(st), wire.MaxMatchAnswer); err == nil {
			t.Errorf("malformed request answered %x; want the stream reset", b)
		}
		st.Close()
		// Seven refusals are denial entries on TH; TH keeps serving.
		if got := len(byType(t, r, ledger.TypeDenial)) - denials; got != 7 {
			t.Errorf("TH recorded %d denials; want 7", got)
		}
		res, err := q.querier.Query(ctx, ivan, req)
		check("query after refusals", res, err)
	})

	t.Run("approval", func(t *testing.T) {
		areq := req
		areq.Offence = "forced_labour"
		res, err := q.querier.Query(ctx, ivan, areq)
		if err != nil || res.Status != "pending" || res.ID == "" || len(res.Partners) != 0 {
			t.Fatalf("query that needs an approver = %+v, %v; want pending", res, err)
		}
		if ps, err := q.querier.Queries(alice, true); err != nil || len(ps) != 1 || ps[0].ID != res.ID || ps[0].User != "ivan" {
			t.Errorf("pending queries = %+v, %v; want %s by ivan", ps, err, res.ID)
		}
		if res.CaseKey == "" {
			t.Fatalf("pending answer %+v gives no case key", res)
		}
		areq.ID = res.ID
		if _, err := q.querier.Query(ctx, ivan, areq); !errors.Is(err, httpapi.ErrBadRequest) {
			t.Errorf("running without the case key of the pending answer: %v; want ErrBadRequest", err)
		}
		areq.CaseKey = res.CaseKey
		if _, err := q.querier.Query(ctx, ivan, areq); !errors.Is(err, httpapi.ErrForbidden) {
			t.Errorf("running before approval: %v; want ErrForbidden", err)
		}
		if _, err := q.querier.Approve(ctx, httpapi.User{Name: "ivan", Role: "approver"}, res.ID); !errors.Is(err, httpapi.ErrForbidden) {
			t.Errorf("ivan approves his own query: %v; want ErrForbidden", err)
		}
		if _, err := q.querier.Approve(ctx, httpapi.User{Name: "eve", Role: "investigator"}, res.ID); !errors.Is(err, httpapi.ErrForbidden) {
			t.Errorf("an investigator approves: %v; want ErrForbidden", err)
		}
		if rec, err := q.querier.Approve(ctx, alice, res.ID); err != nil || rec.Status != "approved" || rec.Approver != "alice" {
			t.Fatalf("alice approves: %+v, %v", rec, err)
		}
		other := areq
		other.Case = "OP-4"
		if _, err := q.querier.Query(ctx, ivan, other); !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("running another case under the approval: %v; want ErrConflict", err)
		}
		// Other values of the same number, kind and case: not what was
		// approved.
		swapped := areq
		swapped.Values = canon(t, "phone", "GB", "07700 900101", "07700 900888", "07700 900202")
		if _, err := q.querier.Query(ctx, ivan, swapped); !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("running other values under the approval: %v; want ErrConflict", err)
		}
		// Runs in parallel: one runs, the others are refused.
		var wg sync.WaitGroup
		results := make([]httpapi.QueryResult, 4)
		errs := make([]error, 4)
		for i := range results {
			wg.Go(func() { results[i], errs[i] = q.querier.Query(ctx, ivan, areq) })
		}
		wg.Wait()
		var p httpapi.PartnerResult
		ran := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ran++
				p = check("approved query", results[i], err)
			case !errors.Is(err, httpapi.ErrConflict):
				t.Errorf("parallel run of one approval: %v; want ErrConflict", err)
			}
		}
		if ran != 1 {
			t.Fatalf("%d of 4 parallel runs of one approval ran; want 1", ran)
		}
		if out := hasEntry(byRequest(t, q, p.RequestID), ledger.TypeMatchOut, ledger.OutcomeOK); out == nil || out.Body.Approver != "user:alice" {
			t.Errorf("outbound entry of the approved query = %+v; want approver alice", out)
		}
		if _, err := q.querier.Query(ctx, ivan, areq); !errors.Is(err, httpapi.ErrConflict) {
			t.Errorf("second run of one approval: %v; want ErrConflict", err)
		}
		// Pending, approval and run are audit entries bound to the query
		// set: the commitment the run's result entry carries.
		var commit ledger.Digest
		for _, e := range byRequest(t, q, p.RequestID) {
			if e.Type == ledger.TypeMatchResult {
				commit = e.Digest
			}
		}
		var steps []string
		for _, e := range byRequest(t, q, res.ID) {
			if e.Type == ledger.TypeApproval {
				steps = append(steps, e.Body.Purpose+" by "+e.Body.Actor)
				if e.Digest != commit || commit == (ledger.Digest{}) {
					t.Errorf("approval entry %q commits to %x; want the run's commitment", e.Body.Purpose, e.Digest)
				}
			}
		}
		want := []string{"query pending approval by user:ivan", "query approved by user:alice", "approved query run by user:ivan"}
		if !slices.Equal(steps, want) {
			t.Errorf("approval entries of %s = %q; want %q", res.ID, steps, want)
		}
	})

	t.Run("partner refuses the kind", func(t *testing.T) {
		// TH's limits let it ask GB phone and email; GB's let TH ask
		// phone only: GB refuses the sync of email, and TH records and
		// reports a denial.
		emails := canon(t, "email", "", "someone@example.org")
		res, err := r.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "email", Case: "OP-4", Basis: "Art. 10", Offence: "thb",
			Purpose: "p", Values: emails})
		if err != nil {
			t.Fatalf("TH asks GB email: %v", err)
		}
		p := partOf(t, res, "GB")
		if p.Outcome != httpapi.OutcomeDenied || p.Reason != string(exchange.ReasonKindNotAllowed) || p.OutboundIndex == nil || len(p.Hits) != 0 {
			t.Fatalf("GB part = %+v; want denied, kind_not_allowed, with its ledger index", p)
		}
		e, err := r.Audit().Entry(*p.OutboundIndex, 0)
		if err != nil || e.Entry.Type != ledger.TypeDenial || e.Entry.Outcome != ledger.OutcomeDenied || e.Entry.Partner != "GB" || e.Entry.Kind != "email" {
			t.Errorf("TH's entry %d = %+v, %v; want a denial of email towards GB", *p.OutboundIndex, e.Entry.Header, err)
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		first := r.epochs.currentEpoch()
		for i := range 2 {
			res, err := q.querier.Query(ctx, ivan, req)
			check(fmt.Sprintf("query %d before rotation", i+1), res, err)
		}
		if _, err := r.holdings.RotateKeys(ctx, httpapi.User{Name: "admin", Role: "admin"}); err != nil {
			t.Fatalf("RotateKeys: %v", err)
		}
		// Queries keep answering correctly until one runs under the new
		// epoch, and after.
		deadline := time.Now().Add(60 * time.Second)
		after := 0
		for i := 0; after < 2; i++ {
			if time.Now().After(deadline) {
				t.Fatalf("no query under the new epoch after %d queries", i)
			}
			res, err := q.querier.Query(ctx, ivan, req)
			p := check(fmt.Sprintf("query %d during rotation", i+1), res, err)
			if p.Epoch > first {
				after++
			}
		}
	})
}

// byType returns the entries of n's ledger of type typ.
func byType(t *testing.T, n *Node, typ ledger.Type) []ledger.Entry {
	t.Helper()
	es, err := n.Audit().Entries(context.Background(), ledger.Filter{Types: []ledger.Type{typ}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

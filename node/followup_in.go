package node

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// followupsInConfig is what the owner's side of step 2 is built from.
type followupsInConfig struct {
	Agency   string
	Signer   crypto.Signer // the agency key: signs acknowledgements, polls' replies and answers
	Keys     exchange.Keys // partners' pinned agency keys (cards)
	Audit    *raftGroup
	Data     recordGetter // the holdings' batches and manifests
	Sets     tagResponders
	Policy   livePolicy
	Host     protoHost // ProtoFollowup is served here
	Registry prometheus.Registerer
	Now      func() time.Time
	Logger   *slog.Logger
}

// followupsIn is the owner's side of step 2 (issue 23, docs/followup.md):
// exchange.FollowupInbox (accepts or refuses partners' follow-ups, maps
// their tags to records, records followup_in, queues them for the
// liaison) and exchange.FollowupAnswers (the signed answer, from any
// replica), the liaison's inbox and answers (followup_inbox.go) and the
// xborder_followups_overdue gauge. Its state is the audit group's records
// (namespace nsFollowupsIn) and the ledger; in memory it keeps the tag
// indexes (followupTags) and an index of match_in entries by request ID.
// It starts no goroutine.
type followupsIn struct {
	agency  string
	signer  crypto.Signer
	audit   *raftGroup
	data    recordGetter
	policy  livePolicy
	tags    *followupTags
	matches *matchIndex
	now     func() time.Time
	log     *slog.Logger
	srv     *exchange.FollowupServer
}

var (
	_ exchange.FollowupInbox   = (*followupsIn)(nil)
	_ exchange.FollowupAnswers = (*followupsIn)(nil)
)

// newFollowupsIn builds the owner's side and serves ProtoFollowup on
// c.Host.
func newFollowupsIn(c followupsInConfig) (*followupsIn, error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &followupsIn{agency: c.Agency, signer: c.Signer, audit: c.Audit, data: c.Data, policy: c.Policy,
		tags: newFollowupTags(c.Agency, c.Data, c.Sets), matches: newMatchIndex(c.Audit), now: c.Now, log: log}
	srv, err := exchange.NewFollowupServer(exchange.FollowupConfig{Agency: c.Agency, Signer: c.Signer, Keys: c.Keys,
		Inbox: f, Answers: f, Clock: c.Now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	f.srv = srv
	if c.Host != nil {
		c.Host.Handle(exchange.ProtoFollowup, srv.Handle)
	}
	if c.Registry != nil {
		if err := c.Registry.Register(&overdueCollector{f: f}); err != nil {
			return nil, fmt.Errorf("open node: register follow-up metrics: %w", err)
		}
	}
	return f, nil
}

// Accept decides an inbound follow-up and records it (exchange.FollowupInbox;
// docs/followup.md, "The owner's checks", step 7).
func (f *followupsIn) Accept(ctx context.Context, in *exchange.InboundFollowup) (time.Time, error) {
	ctx = ledger.FailFast(ctx)
	now := f.now()
	id := hex.EncodeToString(in.ID[:])
	// A read of this replica's records and ledger after Linearize sees
	// every follow-up and match_in committed before: a retry that reached
	// a lagging replica is not taken for a new follow-up.
	if err := f.audit.Linearize(ctx); err != nil {
		return time.Time{}, fmt.Errorf("accept follow-up: %w: %w", exchange.ErrUnavailable, err)
	}
	if rec, _, err := f.record(id); err == nil {
		if rec.Partner == in.Peer.Agency && rec.SigDigest == hex.EncodeToString(in.SignatureSHA256[:]) {
			return rec.Deadline, nil // the querier's retry, perhaps on another replica
		}
		return time.Time{}, f.deny(ctx, in, "", exchange.ReasonReplay)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return time.Time{}, fmt.Errorf("accept follow-up: %w", err)
	}
	m, err := f.matches.find(ctx, hex.EncodeToString(in.RequestID[:]))
	if err != nil {
		return time.Time{}, fmt.Errorf("accept follow-up: %w: %w", exchange.ErrUnavailable, err)
	}
	reaches := tagReaches(in.Tags)
	if m == nil || m.partner != in.Peer.Agency || m.kind != in.Kind || m.epoch != in.Epoch || m.mode != in.Mode ||
		slices.ContainsFunc(reaches, func(r string) bool { return !slices.Contains(m.reaches, r) }) {
		return time.Time{}, f.deny(ctx, in, "", exchange.ReasonUnknownRequest)
	}
	pol := f.policy.Policy()
	rule := pol.Followup(in.Peer.Agency)
	if now.Sub(m.time) > rule.Window {
		return time.Time{}, f.deny(ctx, in, "", exchange.ReasonWindowClosed)
	}
	d := pol.Decide(policy.Request{Principal: policy.Principal{Agency: in.Peer.Agency}, Action: "followup", Kind: in.Kind,
		Context: policy.Context{Purpose: in.Purpose, LegalBasis: in.Basis, Urgent: in.Urgent, Mode: in.Mode, Reaches: reaches},
		Time:    now.UTC(), Epoch: in.Epoch})
	if !d.Allow {
		return time.Time{}, f.deny(ctx, in, d.Version, partnerReason(d.Reasons))
	}
	hits, err := f.tags.lookup(in.Kind, in.Epoch, in.Tags)
	if err != nil {
		return time.Time{}, fmt.Errorf("accept follow-up: map tags: %w", err)
	}
	rec := &inboundRecord{ID: id, Partner: in.Peer.Agency, RequestID: hex.EncodeToString(in.RequestID[:]), Kind: in.Kind,
		Epoch: in.Epoch, Mode: in.Mode, Basis: in.Basis, Purpose: in.Purpose, Urgent: in.Urgent, Received: now.UTC(),
		Deadline: rule.DeadlineFor(now, in.Urgent).UTC().Truncate(time.Millisecond), SigDigest: hex.EncodeToString(in.SignatureSHA256[:]),
		Handling: d.Handling, State: followupOpen}
	matched := 0
	for i, t := range in.Tags {
		h := inboundHit{Reach: t.Reach, Records: hits[i]}
		if len(h.Records) > 0 {
			matched++
		}
		rec.Hits = append(rec.Hits, h)
	}
	e := followupEntry(in, d.Version)
	e.Type, e.Outcome, e.HitCount, e.Handling = ledger.TypeFollowupIn, ledger.OutcomeOK, uint64(matched), d.Handling
	// One command per signed follow-up: a retry of the same bytes (on
	// this replica or another, after a lost answer) appends nothing new.
	if _, err := f.audit.Append(ledger.WithCommandID(ctx, "followup_in/"+id+"/"+rec.SigDigest), e); err != nil {
		return time.Time{}, fmt.Errorf("record followup_in: %w: %w", exchange.ErrUnavailable, err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return time.Time{}, fmt.Errorf("accept follow-up: %w", err)
	}
	if _, err := f.audit.Swap(ctx, nsFollowupsIn, id, ledger.Digest{}, b); err != nil {
		if errors.Is(err, ledger.ErrConflict) {
			// Another replica stored this follow-up ID first: the same
			// signed bytes are a retry; others a replay.
			if got, _, gerr := f.record(id); gerr == nil && got.SigDigest == rec.SigDigest && got.Partner == rec.Partner {
				return got.Deadline, nil
			}
			return time.Time{}, f.deny(ctx, in, d.Version, exchange.ReasonReplay)
		}
		return time.Time{}, fmt.Errorf("queue follow-up: %w: %w", exchange.ErrUnavailable, err)
	}
	f.log.Info("follow-up accepted", "partner", rec.Partner, "followup", id, "tags", len(in.Tags), "matched", matched,
		"urgent", in.Urgent)
	if rule.AutoAnswers(in.Kind) {
		if ok, err := f.autoAnswer(ctx, rec, b); err != nil {
			f.log.Warn("follow-up not answered on its own; it waits for the liaison", "followup", id, "err", err)
		} else if !ok {
			f.log.Info("follow-up needs the liaison", "followup", id)
		}
	}
	return rec.Deadline, nil
}

// deny records a follow-up's denial (a denial entry with its follow-up
// ID) and returns it as the partner-visible reason.
func (f *followupsIn) deny(ctx context.Context, in *exchange.InboundFollowup, version string, r exchange.Reason) error {
	if version == "" {
		version = f.policy.Policy().Version()
	}
	e := followupEntry(in, version)
	e.Type, e.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
	if r == exchange.ReasonReplay {
		e.Outcome = ledger.OutcomeDeniedReplay
	}
	if _, err := f.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record follow-up denial: %w: %w", exchange.ErrUnavailable, err)
	}
	f.log.Info("follow-up denied", "partner", in.Peer.Agency, "followup", hex.EncodeToString(in.ID[:]), "reason", string(r))
	return exchange.Deny(r)
}

// Refused records a follow-up the server refused itself: a denial entry.
// For a bad signature or a wrong peer nothing of it is trusted: the entry
// names only the pinned agency of the stream. Never a tag.
func (f *followupsIn) Refused(ctx context.Context, in *exchange.InboundFollowup, r exchange.Reason) error {
	var e ledger.Entry
	if r == exchange.ReasonBadSignature || r == exchange.ReasonWrongPeer {
		e = ledger.Entry{Header: ledger.Header{Partner: in.Peer.Agency}}
	} else {
		e = followupEntry(in, f.policy.Policy().Version())
		e.Body = ledger.Body{}
		if _, err := ident.ParseKind(e.Kind); err != nil {
			e.Kind = ""
		}
		if !exchange.ValidMode(e.Mode) {
			e.Mode = ""
		}
		if rs := tagReaches(in.Tags); slices.ContainsFunc(rs, func(x string) bool { return !exchange.ValidReach(x) }) {
			e.Reaches = ""
		}
	}
	e.Type, e.Outcome = ledger.TypeDenial, ledger.OutcomeDenied
	if r == exchange.ReasonReplay {
		e.Outcome = ledger.OutcomeDeniedReplay
	}
	if _, err := f.audit.Append(ledger.FailFast(ctx), e); err != nil {
		return fmt.Errorf("record refused follow-up: %w: %w", exchange.ErrUnavailable, err)
	}
	return nil
}

// followupEntry is the ledger entry of an inbound follow-up: follow-up
// ID, request ID, partner, kind, epoch, mode, the reaches of its tags,
// the number of tags (Count), urgency and the digest of its signature;
// legal basis and purpose in the prunable body. Never a tag nor a record.
func followupEntry(in *exchange.InboundFollowup, version string) ledger.Entry {
	urg := uint8(0)
	if in.Urgent {
		urg = 1
	}
	return ledger.Entry{
		Header: ledger.Header{RequestID: hex.EncodeToString(in.RequestID[:]), FollowupID: hex.EncodeToString(in.ID[:]),
			Partner: in.Peer.Agency, Kind: in.Kind, Epoch: in.Epoch, Mode: in.Mode, Reaches: strings.Join(tagReaches(in.Tags), ","),
			Count: uint64(len(in.Tags)), Urgency: urg, RequestSigDigest: in.SignatureSHA256, PolicyVersion: version},
		Body: ledger.Body{Actor: "agency:" + in.Peer.Agency, Purpose: in.Purpose, LegalBasis: in.Basis},
	}
}

// tagReaches returns the distinct reaches of tags in their canonical
// order (unknown ones last, as named).
func tagReaches(tags []exchange.FollowupTag) []string {
	var out []string
	for _, r := range reachNames {
		if slices.ContainsFunc(tags, func(t exchange.FollowupTag) bool { return t.Reach == r }) {
			out = append(out, r)
		}
	}
	for _, t := range tags {
		if !slices.Contains(out, t.Reach) {
			out = append(out, t.Reach)
		}
	}
	return out
}

// matchRef is what a follow-up is checked against of a match_in entry.
type matchRef struct {
	partner, kind, mode string
	epoch               uint64
	reaches             []string
	time                time.Time
}

// matchIndex finds match_in entries by request ID. It reads the ledger
// forward from where it stopped (from the start of the longest follow-up
// window on the first call) and keeps in memory, per match_in entry of
// that span, its request ID and the fields a follow-up is checked
// against: no identifier, nothing the ledger does not hold.
type matchIndex struct {
	audit *raftGroup

	mu    sync.Mutex
	next  uint64 // the first ledger index not read yet
	begun bool
	byID  map[string]matchRef
}

// maxFollowupWindow is the longest follow-up window the limits file may
// set: older match_in entries are never followed up.
const maxFollowupWindow = 366 * 24 * time.Hour

func newMatchIndex(audit *raftGroup) *matchIndex {
	return &matchIndex{audit: audit, byID: map[string]matchRef{}}
}

// find returns the match_in entry of request ID id (hex), or nil.
func (x *matchIndex) find(ctx context.Context, id string) (*matchRef, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.catchUp(ctx); err != nil {
		return nil, err
	}
	if m, ok := x.byID[id]; ok {
		return &m, nil
	}
	return nil, nil
}

// catchUp reads the entries appended since the last call. The caller
// holds x.mu.
func (x *matchIndex) catchUp(ctx context.Context) error {
	size := x.audit.Status().Size
	if !x.begun {
		from := time.Now().Add(-maxFollowupWindow)
		// Entry times never go backwards: the first entry of the span is
		// found by bisection.
		lo, hi := uint64(0), size
		for lo < hi {
			mid := lo + (hi-lo)/2
			es, err := x.audit.Entries(ctx, ledger.Filter{After: mid, Limit: 1})
			if err != nil {
				return err
			}
			if len(es) == 1 && es[0].Time.Before(from) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		x.next, x.begun = lo, true
	}
	if x.next >= size {
		return nil
	}
	es, err := x.audit.Entries(ctx, ledger.Filter{After: x.next, Types: []ledger.Type{ledger.TypeMatchIn}})
	if err != nil {
		return err
	}
	cut := time.Now().Add(-maxFollowupWindow)
	for _, e := range es {
		mode := e.Mode
		if mode == "" {
			mode = exchange.ModeEnforcement
		}
		reaches := []string{reachOpen}
		if e.Reaches != "" {
			reaches = strings.Split(e.Reaches, ",")
		}
		x.byID[e.RequestID] = matchRef{partner: e.Partner, kind: e.Kind, mode: mode, epoch: e.Epoch, reaches: reaches, time: e.Time}
		size = max(size, e.Index+1)
	}
	for id, m := range x.byID {
		if m.time.Before(cut) {
			delete(x.byID, id)
		}
	}
	x.next = size
	return nil
}

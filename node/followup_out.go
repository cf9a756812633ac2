package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// nsFollowupsOut holds the follow-ups this agency sent (key: follow-up ID,
// hex; value: sentFollowup JSON): what was asked (hit numbers, never
// tags), its state, and the partner's signed answer once it came.
const nsFollowupsOut = "followups_out"

// followupClient sends follow-ups and polls for their answers over the
// host (*exchange.Client).
type followupClient interface {
	Followup(ctx context.Context, o exchange.Opener, peer exchange.PeerID, f exchange.Followup) (*exchange.FollowupAck, error)
	PollFollowup(ctx context.Context, o exchange.Opener, peer exchange.PeerID, p exchange.FollowupPoll) (*exchange.FollowupStatus, error)
}

// followupOutConfig is what the querier's side of step 2 is built from.
type followupOutConfig struct {
	Audit  *raftGroup // followup_out, followup_result and denial entries; the records
	Hits   *hitStore  // the tags of hits, per request
	Policy livePolicy
	Pins   pinnedCards   // the partners' cards: their replicas
	Keys   exchange.Keys // the partners' pinned agency keys: a stored answer is verified again when shown
	Client followupClient
	Opener exchange.Opener
	Order  matchReplicas // which replica of a partner to ask first (the querier's)
	// Leader reports whether this replica leads the audit group: only the
	// leader polls.
	Leader func() bool
	// Interval is how often the poll loop runs (urgent follow-ups are
	// polled on every pass, others less often). Zero: DefaultFollowupPoll.
	Interval time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

// followupOut is this agency's side of step 2 as the querier: it sends
// follow-ups of hits (Send), polls the owners for their answers on the
// audit leader (followup_poll.go), erases the tags of hits after the
// window, and shows the answers to whom may read them. Its goroutine
// starts with Start and ends when Close returns.
type followupOut struct {
	cfg  followupOutConfig
	mu   sync.Mutex
	next map[string]pollTurn // follow-up ID -> when to poll it again (this leader's memory)

	stop chan struct{}
	wg   sync.WaitGroup
}

// sentFollowup is the stored record of a follow-up: the API's record
// without the decoded answer, and what the node needs to poll and show it.
type sentFollowup struct {
	httpapi.SentFollowup
	Epoch uint64    `json:"epoch"`
	Sent  time.Time `json:"sent"` // the signed request's time
	// Signed is the partner's signed answer (exchange.FollowupAnswer
	// bytes), kept as evidence and verified again whenever shown.
	Signed []byte `json:"signed,omitempty"`
}

func newFollowupOut(cfg followupOutConfig) *followupOut {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultFollowupPoll
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &followupOut{cfg: cfg, next: map[string]pollTurn{}, stop: make(chan struct{})}
}

// followupWindow is how long after a match request its hits can be
// followed up with partner: the limits file's window, else
// DefaultFollowupWindow.
func followupWindow(pol livePolicy, partner string) time.Duration {
	if w := pol.Policy().Followup(partner).Window; w > 0 {
		return w
	}
	return DefaultFollowupWindow
}

// Send follows up hits of one partner's part of a query (id: the query ID
// with req.Partner, or the partner's request ID). In order: the hits kept
// for that request (404 when none), the user (the investigator who asked,
// or one whose role may approve the kind), the request's form and the hit
// numbers (400: a number that is no hit names nothing that can be sent),
// a quorum, the policy in force (action followup; a denial is recorded as
// a denial entry with the follow-up ID, and nothing is sent). Then the
// record (state "sending") is committed, the follow-up sent to the
// partner's replicas in turn, and its outcome committed as followup_out.
func (f *followupOut) Send(ctx context.Context, u httpapi.User, id string, req httpapi.FollowupRequest) (httpapi.SentFollowup, error) {
	partner := strings.ToUpper(strings.TrimSpace(req.Partner))
	k, err := f.cfg.Hits.lookup(id, partner)
	if err != nil {
		return httpapi.SentFollowup{}, err
	}
	if !f.mayFollowUp(u, k) {
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up of request %s: only %s, who asked, or an approver of %s queries may follow its hits up: %w",
			k.RequestID, k.User, k.Kind, httpapi.ErrForbidden)
	}
	req.Basis, req.Purpose = strings.TrimSpace(req.Basis), strings.TrimSpace(req.Purpose)
	switch {
	case req.Basis == "":
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up of request %s: give the legal basis (--basis): %w", k.RequestID, httpapi.ErrBadRequest)
	case req.Purpose == "":
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up of request %s: give the purpose (--purpose): %w", k.RequestID, httpapi.ErrBadRequest)
	case len(req.Hits) == 0:
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up of request %s: name the hits to follow up (--hit N, as xborder query numbered them): %w", k.RequestID, httpapi.ErrBadRequest)
	case len(req.Hits) > exchange.MaxFollowupTags:
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up of request %s: %d hits named, at most %d in one follow-up: %w",
			k.RequestID, len(req.Hits), exchange.MaxFollowupTags, httpapi.ErrBadRequest)
	}
	tags, err := k.tags(req.Hits)
	if err != nil {
		return httpapi.SentFollowup{}, err
	}
	if err := f.cfg.Audit.Quorum(); err != nil {
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up of request %s: the audit ledger has no quorum (%v), so nothing can be recorded or sent: %w",
			k.RequestID, err, httpapi.ErrUnavailable)
	}
	var fid [16]byte
	if _, err := rand.Read(fid[:]); err != nil {
		return httpapi.SentFollowup{}, fmt.Errorf("follow-up: draw ID: %w", err)
	}
	now := f.cfg.Now().UTC()
	rec := &sentFollowup{SentFollowup: httpapi.SentFollowup{ID: hex.EncodeToString(fid[:]), Query: k.Query, RequestID: k.RequestID,
		Partner: k.Partner, User: u.Name, Kind: k.Kind, Mode: k.Mode, Hits: slices.Clone(req.Hits), Reaches: keptReaches(tags),
		Basis: req.Basis, Purpose: req.Purpose, Urgent: req.Urgent, Created: now, Status: httpapi.FollowupSending},
		Epoch: k.Epoch, Sent: now}
	if f.cfg.Audit.Status().Policy != f.cfg.Policy.Policy().Version() {
		f.cfg.Policy.refreshPolicy()
	}
	d := f.cfg.Policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role}, Action: "followup",
		Kind: k.Kind, Partner: k.Partner, Time: now,
		Context: policy.Context{Purpose: req.Purpose, LegalBasis: req.Basis, Urgent: req.Urgent, Mode: k.Mode, Reaches: rec.Reaches}})
	if !d.Allow {
		rc, err := f.cfg.Audit.Append(ledger.WithCommandID(ctx, "followup_out/"+rec.ID), f.entry(rec, ledger.TypeDenial, ledger.OutcomeDenied))
		if err != nil {
			return httpapi.SentFollowup{}, fmt.Errorf("follow-up of request %s: denied by policy, and the denial could not be recorded: %w: %w",
				k.RequestID, err, httpapi.ErrUnavailable)
		}
		rec.Status, rec.Reason, rec.OutIndex = httpapi.FollowupDenied, d.Reasons[0].ID, &rc.Index
		if err := f.put(ctx, rec); err != nil {
			return httpapi.SentFollowup{}, fmt.Errorf("%w: %w", err, httpapi.ErrUnavailable)
		}
		f.cfg.Log.Info("follow-up denied by policy", "followup", rec.ID, "partner", rec.Partner, "reason", rec.Reason)
		return rec.view(f.cfg.Now()), nil
	}
	// The record first: a follow-up the node stopped sending is found
	// and settled by the poll loop.
	if err := f.put(ctx, rec); err != nil {
		return httpapi.SentFollowup{}, fmt.Errorf("%w; nothing was sent: %w", err, httpapi.ErrUnavailable)
	}
	ack, err := f.send(ctx, rec, tags)
	if err := f.settle(ctx, rec, ack, err); err != nil {
		return httpapi.SentFollowup{}, err
	}
	return rec.view(f.cfg.Now()), nil
}

// mayFollowUp reports whether u may follow up the hits of k: the user who
// asked, or a user whose role may approve k's kind.
func (f *followupOut) mayFollowUp(u httpapi.User, k *keptHits) bool {
	if u.Name == k.User {
		return true
	}
	return f.cfg.Policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role}, Action: "approve",
		Kind: k.Kind, Time: f.cfg.Now().UTC()}).Allow
}

// keptReaches returns the distinct reaches of tags, in reach order.
func keptReaches(tags []keptTag) []string {
	var out []string
	for _, t := range tags {
		if !slices.Contains(out, t.Reach) {
			out = append(out, t.Reach)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return reachOrder(a) - reachOrder(b) })
	return out
}

// send asks the partner's replicas in turn until one acknowledges or
// refuses rec. Every replica gets the same signed bytes: one that accepted
// it before its acknowledgement was lost says "replay", and the poll then
// gives the deadline it accepted with.
func (f *followupOut) send(ctx context.Context, rec *sentFollowup, tags []keptTag) (*exchange.FollowupAck, error) {
	c, ok := f.cfg.Pins.Pins()[rec.Partner]
	if !ok {
		return nil, fmt.Errorf("follow-up %s: %w", rec.Partner, ErrNotPinned)
	}
	xf := exchange.Followup{Time: rec.Sent, Owner: rec.Partner, Kind: rec.Kind, Epoch: rec.Epoch, Mode: rec.Mode,
		Basis: rec.Basis, Purpose: rec.Purpose, Urgent: rec.Urgent}
	var err error
	if xf.ID, xf.RequestID, err = rec.ids(); err != nil {
		return nil, err
	}
	for _, t := range tags {
		xf.Tags = append(xf.Tags, exchange.FollowupTag{Reach: t.Reach, Tag: tagOf(t)})
	}
	var ack *exchange.FollowupAck
	retried := false
	err = f.cfg.Order.ask(ctx, c, replicaPasses, func(peer exchange.PeerID) error {
		a, err := f.cfg.Client.Followup(ctx, f.cfg.Opener, peer, xf)
		ack = a
		retried = retried || errors.Is(err, exchange.ErrUnavailable)
		return err
	})
	var denied *exchange.DeniedError
	if retried && errors.As(err, &denied) && denied.Reason == exchange.ReasonReplay {
		// A replica accepted it and its acknowledgement was lost.
		if st, perr := f.poll(ctx, rec); perr == nil {
			return &exchange.FollowupAck{ID: xf.ID, Deadline: st.Deadline, Time: st.Time}, nil
		}
	}
	return ack, err
}

// settle records the outcome of sending rec: its state, the followup_out
// entry, the record. When the entry or the record cannot be committed the
// poll loop commits them later; the caller is told so.
func (f *followupOut) settle(ctx context.Context, rec *sentFollowup, ack *exchange.FollowupAck, err error) error {
	out := ledger.OutcomeOK
	var denied *exchange.DeniedError
	switch {
	case err == nil:
		rec.Status, rec.Deadline = httpapi.FollowupOpen, ack.Deadline.UTC()
	case errors.As(err, &denied):
		rec.Status, rec.Reason, out = httpapi.FollowupDenied, string(denied.Reason), ledger.OutcomeDenied
	case errors.Is(err, exchange.ErrVerify):
		rec.Status, rec.Reason, out = httpapi.FollowupFailed, "the partner's acknowledgement did not verify: "+err.Error(), ledger.OutcomeFailed
	default:
		rec.Status, rec.Reason, out = httpapi.FollowupFailed, "no replica of "+rec.Partner+" acknowledged it: "+err.Error(), ledger.OutcomeFailed
	}
	// One command ID per follow-up: a second attempt (the poll loop's, after
	// a failure here) gets this one's receipt, never a second entry.
	rc, aerr := f.cfg.Audit.Append(ledger.WithCommandID(ctx, "followup_out/"+rec.ID), f.entry(rec, ledger.TypeFollowupOut, out))
	if aerr == nil {
		rec.OutIndex = &rc.Index
	}
	perr := f.put(ctx, rec)
	f.cfg.Log.Info("follow-up sent", "followup", rec.ID, "partner", rec.Partner, "hits", len(rec.Hits), "status", rec.Status,
		"recorded", aerr == nil && perr == nil)
	if aerr != nil || perr != nil {
		return fmt.Errorf("follow-up %s to %s: %s, but this node did not record it yet (%w); it records it on its next poll pass: %w",
			rec.ID, rec.Partner, rec.Status, errors.Join(aerr, perr), httpapi.ErrUnavailable)
	}
	return nil
}

// entry is the ledger entry of rec (followup_out, or the denial of a
// follow-up this node's policy refused): the follow-up and match request
// IDs, the partner, kind, epoch, mode, reaches, number of hits named and
// urgency; the body who followed up, on which basis and why.
func (f *followupOut) entry(rec *sentFollowup, t ledger.Type, out ledger.Outcome) ledger.Entry {
	urg := uint8(0)
	if rec.Urgent {
		urg = 1
	}
	return ledger.Entry{
		Header: ledger.Header{Type: t, Outcome: out, RequestID: rec.RequestID, FollowupID: rec.ID, Partner: rec.Partner,
			Kind: rec.Kind, Epoch: rec.Epoch, Mode: rec.Mode, Reaches: strings.Join(rec.Reaches, ","),
			Count: uint64(len(rec.Hits)), Urgency: urg},
		Body: ledger.Body{Actor: "user:" + rec.User, LegalBasis: rec.Basis, Purpose: rec.Purpose},
	}
}

// ids returns rec's follow-up and request IDs.
func (rec *sentFollowup) ids() (id, request [16]byte, err error) {
	a, err1 := hex.DecodeString(rec.ID)
	b, err2 := hex.DecodeString(rec.RequestID)
	if err1 != nil || err2 != nil || len(a) != 16 || len(b) != 16 {
		return id, request, fmt.Errorf("follow-up %s: stored IDs are not 16 bytes of hex", rec.ID)
	}
	copy(id[:], a)
	copy(request[:], b)
	return id, request, nil
}

// view is the API's record of rec, without its answer.
func (rec *sentFollowup) view(now time.Time) httpapi.SentFollowup {
	v := rec.SentFollowup
	v.Answer = nil
	v.Overdue = v.Status == httpapi.FollowupOpen && !v.Deadline.IsZero() && now.After(v.Deadline)
	return v
}

func (f *followupOut) put(ctx context.Context, rec *sentFollowup) error {
	r := *rec
	r.Answer = nil
	b, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("record follow-up %s: %w", rec.ID, err)
	}
	if _, err := f.cfg.Audit.Put(ctx, nsFollowupsOut, rec.ID, b); err != nil {
		return fmt.Errorf("record follow-up %s: %w", rec.ID, err)
	}
	return nil
}

func (f *followupOut) get(id string) (*sentFollowup, error) {
	b, err := f.cfg.Audit.Get(nsFollowupsOut, strings.ToLower(id))
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("follow-up %s: no such follow-up: %w", id, httpapi.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("follow-up %s: %w", id, err)
	}
	var rec sentFollowup
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("follow-up %s: stored record: %w", id, err)
	}
	return &rec, nil
}

// all returns every stored follow-up.
func (f *followupOut) all() ([]*sentFollowup, error) {
	var out []*sentFollowup
	err := f.cfg.Audit.Scan(nsFollowupsOut, "", func(_ string, v []byte) error {
		var rec sentFollowup
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("stored follow-up: %w", err)
		}
		out = append(out, &rec)
		return nil
	})
	return out, err
}

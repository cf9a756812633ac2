package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// nsFollowupsIn is the audit group's record namespace of inbound
// follow-ups: key the follow-up ID in hex, value an inboundRecord (JSON).
const nsFollowupsIn = "followups_in"

// Follow-up states.
const (
	followupOpen    = "open"
	followupShared  = "shared"
	followupRefused = "refused"
)

// autoActor is the actor of an answer the node gave on its own.
const autoActor = "auto"

// inboundRecord is one partner's follow-up as the owner keeps it: what
// the request said, the records its tags named (by their place in the
// holdings, never a tag or an identifier), the deadline, and the signed
// answer once decided. Basis and purpose are officers' words: they stay
// in these records and the ledger's prunable body, never in logs.
type inboundRecord struct {
	ID        string       `json:"id"`
	Partner   string       `json:"partner"`
	RequestID string       `json:"request_id"`
	Kind      string       `json:"kind"`
	Epoch     uint64       `json:"epoch"`
	Mode      string       `json:"mode"`
	Basis     string       `json:"basis"`
	Purpose   string       `json:"purpose"`
	Urgent    bool         `json:"urgent"`
	Received  time.Time    `json:"received"`
	Deadline  time.Time    `json:"deadline"`
	SigDigest string       `json:"sig_digest"` // SHA-256 of the request's signature, hex: a retry carries the same
	Handling  string       `json:"handling"`   // the agreement's handling code for the partner and kind
	Hits      []inboundHit `json:"hits"`       // in the request's order: hit N is Hits[N-1]
	// State is open until decided, then shared or refused; Answer holds
	// the signed answer's bytes from then, served to polls only once
	// Audited (its followup_answer entry is committed).
	State      string    `json:"state"`
	Answer     []byte    `json:"answer,omitempty"`
	Audited    bool      `json:"audited,omitempty"`
	Actor      string    `json:"actor,omitempty"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	Shared     int       `json:"shared,omitempty"` // hits shared
}

// inboundHit is one tag of a follow-up: its reach and the records it
// named when accepted (none: the tag names nothing this agency holds).
type inboundHit struct {
	Reach   string       `json:"reach"`
	Records []heldRecord `json:"records,omitempty"`
}

// record reads follow-up id and its stored bytes.
func (f *followupsIn) record(id string) (*inboundRecord, []byte, error) {
	b, err := f.audit.Get(nsFollowupsIn, id)
	if err != nil {
		return nil, nil, err
	}
	var r inboundRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil, fmt.Errorf("follow-up record %s: %w", id, err)
	}
	if r.State == "" {
		r.State = followupOpen
	}
	return &r, b, nil
}

// State returns a follow-up's deadline and, once its entry is committed,
// the signed answer (exchange.FollowupAnswers). A follow-up not found is
// looked for again after Linearize, so that a poll reaching a lagging
// replica is not told there is none.
func (f *followupsIn) State(ctx context.Context, partner string, id [16]byte) (*exchange.FollowupState, error) {
	key := hex.EncodeToString(id[:])
	rec, _, err := f.record(key)
	if errors.Is(err, ledger.ErrNotFound) {
		if lerr := f.audit.Linearize(ledger.FailFast(ctx)); lerr != nil {
			return nil, fmt.Errorf("follow-up state: %w", lerr)
		}
		rec, _, err = f.record(key)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("follow-up %s: %w", key, exchange.ErrNoFollowup)
	}
	if err != nil {
		return nil, fmt.Errorf("follow-up state: %w", err)
	}
	if rec.Partner != partner {
		return nil, fmt.Errorf("follow-up %s: %w", key, exchange.ErrNoFollowup)
	}
	st := &exchange.FollowupState{Deadline: rec.Deadline}
	if rec.Audited {
		st.Answer = rec.Answer
	}
	return st, nil
}

// resolve reads the records a hit named as they are now in the data
// group: a batch removed or rewritten since (a removal) is reported as
// changed, never misread.
func (f *followupsIn) resolve(rs []heldRecord) []heldRecord {
	out := make([]heldRecord, 0, len(rs))
	for _, r := range rs {
		cur := heldRecord{Batch: r.Batch, Pos: r.Pos, Rows: r.Rows, Class: r.Class}
		b, err := f.data.Get(nsRows, r.Batch)
		var rows []row
		if err == nil {
			rows, err = decodeRows(b)
		}
		if err != nil || len(rows) != r.Rows || r.Pos >= len(rows) || rows[r.Pos].class.String() != r.Class {
			cur.Changed = true
		} else {
			x := rows[r.Pos]
			cur.Ref, cur.Contact, cur.Handling = x.ref, x.contact, x.handling
		}
		out = append(out, cur)
	}
	return out
}

// decision is a liaison's (or the node's) answer before it is signed.
type decision struct {
	refuse            bool
	reason            string
	share             []string // "reference", "contact"
	handling, message string
	actor             string
}

// autoAnswer answers rec on the node's own when the limits file lets it
// (checked by the caller) and no liaison decision is required: every tag
// of the open reach, each naming a record of class suspect or unknown
// with a handling code and a reference or contact. It reports whether it
// answered.
func (f *followupsIn) autoAnswer(ctx context.Context, rec *inboundRecord, stored []byte) (bool, error) {
	handling := ""
	for _, h := range rec.Hits {
		if h.Reach != reachOpen || len(h.Records) == 0 {
			return false, nil
		}
		ok := false
		for _, r := range f.resolve(h.Records) {
			if r.Changed || r.Handling == "" || (r.Class != classSuspect.String() && r.Class != classUnknown.String()) {
				return false, nil
			}
			ok = ok || r.Ref != "" || r.Contact != ""
			handling = max(handling, r.Handling)
		}
		if !ok {
			return false, nil
		}
	}
	_, err := f.decide(ctx, rec, stored, decision{share: []string{"reference", "contact"}, handling: handling, actor: autoActor})
	return err == nil, err
}

// decide signs d as rec's answer, stores it, commits its followup_answer
// entry and marks it audited. An answer stored whose entry did not commit
// (no quorum then) is finished as it was signed, whatever d says now.
func (f *followupsIn) decide(ctx context.Context, rec *inboundRecord, stored []byte, d decision) (*inboundRecord, error) {
	if rec.State == followupOpen {
		a, shared, err := f.answerOf(rec, d)
		if err != nil {
			return nil, err
		}
		signed, err := exchange.SignFollowupAnswer(f.signer, a)
		if err != nil {
			return nil, fmt.Errorf("answer follow-up: %w: %w", httpapi.ErrBadRequest, err)
		}
		next := *rec
		next.State, next.Answer, next.Actor, next.AnsweredAt, next.Shared = followupShared, signed, d.actor, a.Time, shared
		if d.refuse {
			next.State = followupRefused
		}
		b, err := json.Marshal(&next)
		if err != nil {
			return nil, err
		}
		if _, err := f.audit.Swap(ctx, nsFollowupsIn, rec.ID, ledger.ValueDigest(stored), b); err != nil {
			if errors.Is(err, ledger.ErrConflict) {
				return nil, fmt.Errorf("follow-up %s was answered meanwhile: %w", rec.ID, httpapi.ErrConflict)
			}
			return nil, fmt.Errorf("answer follow-up: %w", err)
		}
		rec, stored = &next, b
	}
	if rec.Audited {
		return rec, nil
	}
	pub, _ := f.signer.Public().(ed25519.PublicKey)
	a, err := exchange.VerifyFollowupAnswer(pub, rec.Answer)
	if err != nil {
		return nil, fmt.Errorf("stored answer of follow-up %s: %w", rec.ID, err)
	}
	e := ledger.Entry{Header: ledger.Header{Type: ledger.TypeFollowupAnswer, FollowupID: rec.ID, RequestID: rec.RequestID,
		Partner: rec.Partner, Kind: rec.Kind, Epoch: rec.Epoch, Mode: rec.Mode, Outcome: ledger.OutcomeOK, Handling: a.Handling,
		Count: uint64(rec.Shared), Digest: sha256.Sum256(rec.Answer), PolicyVersion: f.policy.Policy().Version()},
		Body: ledger.Body{Actor: rec.Actor}}
	if a.Refused {
		e.Outcome = ledger.OutcomeDenied
	}
	if _, err := f.audit.Append(ledger.WithCommandID(ctx, "followup_answer/"+rec.ID), e); err != nil {
		return nil, fmt.Errorf("record followup_answer: %w", err)
	}
	done := *rec
	done.Audited = true
	b, err := json.Marshal(&done)
	if err != nil {
		return nil, err
	}
	if _, err := f.audit.Swap(ctx, nsFollowupsIn, rec.ID, ledger.ValueDigest(stored), b); err != nil && !errors.Is(err, ledger.ErrConflict) {
		return nil, fmt.Errorf("answer follow-up: %w", err)
	}
	f.log.Info("follow-up answered", "partner", rec.Partner, "followup", rec.ID, "state", rec.State, "shared", rec.Shared)
	return &done, nil
}

// answerOf builds the answer d gives to rec, and the number of hits it
// shares: per hit, the first of its records (as they are now) with what d
// shares; the record's handling code where it differs from the answer's.
func (f *followupsIn) answerOf(rec *inboundRecord, d decision) (*exchange.FollowupAnswer, int, error) {
	a := &exchange.FollowupAnswer{Time: f.now().UTC(), Owner: f.agency, Querier: rec.Partner, Refused: d.refuse,
		Reason: d.reason, Message: d.message}
	fid, err1 := hex.DecodeString(rec.ID)
	rid, err2 := hex.DecodeString(rec.RequestID)
	if err1 != nil || err2 != nil || len(fid) != 16 || len(rid) != 16 {
		return nil, 0, fmt.Errorf("follow-up record %s: bad IDs", rec.ID)
	}
	copy(a.FollowupID[:], fid)
	copy(a.RequestID[:], rid)
	if d.refuse {
		return a, 0, nil
	}
	a.Handling = d.handling
	ref, contact := slices.Contains(d.share, "reference"), slices.Contains(d.share, "contact")
	for i, h := range rec.Hits {
		for _, r := range f.resolve(h.Records) {
			s := exchange.SharedRecord{Hit: i + 1}
			if ref {
				s.Reference = r.Ref
			}
			if contact {
				s.Contact = r.Contact
			}
			if r.Changed || (s.Reference == "" && s.Contact == "") {
				continue
			}
			if r.Handling != "" && r.Handling != d.handling {
				s.Handling = r.Handling
			}
			a.Shared = append(a.Shared, s)
			break
		}
	}
	if len(a.Shared) == 0 {
		return nil, 0, fmt.Errorf("answer follow-up %s: the records hit hold no %s to share; refuse it instead: %w",
			rec.ID, strings.Join(d.share, " or "), httpapi.ErrBadRequest)
	}
	return a, len(a.Shared), nil
}

// overdueCollector is xborder_followups_overdue{partner}: the open
// follow-ups past their deadline, per partner, read from the records at
// each scrape.
type overdueCollector struct{ f *followupsIn }

var overdueDesc = prometheus.NewDesc("xborder_followups_overdue",
	"Partners' follow-ups still open past their answer deadline.", []string{"partner"}, nil)

func (c *overdueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- overdueDesc }

func (c *overdueCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.f.now()
	per := map[string]int{}
	_ = c.f.audit.Scan(nsFollowupsIn, "", func(_ string, v []byte) error {
		var r inboundRecord
		if json.Unmarshal(v, &r) == nil && (r.State == "" || r.State == followupOpen) {
			per[r.Partner] += 0
			if now.After(r.Deadline) {
				per[r.Partner]++
			}
		}
		return nil
	})
	partners := make([]string, 0, len(per))
	for p := range per {
		partners = append(partners, p)
	}
	sort.Strings(partners)
	for _, p := range partners {
		ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, float64(per[p]), p)
	}
}

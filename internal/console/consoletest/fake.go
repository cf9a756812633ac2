// Package consoletest holds what the console's tests and its screenshot
// command share: Fake, an in-memory node behind the console (users,
// policy, a real RFC 6962 ledger with signed and cosigned checkpoints,
// queries against one partner's holdings), and Browser, which drives
// Debian's chromium with chromedp.
//
// The fake's ledger is built with the same ledger/format and tlog code the
// node uses, so the console's verification is exercised for real; Tamper
// makes it serve a wrong proof.
package consoletest

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// Agency is the fake node's agency; Partner its one partner.
const (
	Agency  = "GB"
	Partner = "TH"
)

// Users of the fake, one per role; their tokens are Token(name).
var Users = []httpapi.User{
	{Name: "ivy", Role: "investigator"},
	{Name: "alan", Role: "approver"},
	{Name: "ada", Role: "auditor"},
	{Name: "root", Role: "admin"},
	{Name: "sam", Role: "steward"},
	{Name: "lia", Role: "liaison"},
}

// Token returns the API token of a fake user.
func Token(name string) string { return "xbt_" + name + "_0123456789abcdef0123456789abcdef" }

// permits is the fake's policy: what each role may do (examples/policy).
var permits = map[string][]string{
	"investigator": {"match"},
	"approver":     {"approve"},
	"auditor":      {"read_ledger", "export"},
	"admin":        {"manage_users", "manage_partners", "manage_keys", "manage_policy"},
	"steward":      {"manage_partners", "import"},
	"liaison":      {"answer_followup"},
}

// A Read is one ledger read the fake served: who, why, which entry
// (-1: a list).
type Read struct {
	User    string
	Purpose string
	Index   int64
}

// Fake is an in-memory console.Backend.
type Fake struct {
	// LedgerKey is the note verifier key of the fake's ledger.
	LedgerKey string

	signer    note.Signer
	cosigner  note.Signer
	witness   string // the partner witness's verifier key
	mu        sync.Mutex
	users     []httpapi.User
	entries   []ledger.Entry
	leaves    [][]byte
	hashes    []tlog.Hash
	reads     []Read
	queries   []httpapi.QueryRecord
	commits   map[string]string // pending query ID to the commitment of its values, as the node keeps
	tamper    bool
	held      map[string]bool // the partner's holdings, canonical values
	approval  bool
	checkSize uint64          // size of the newest signed checkpoint
	victims   map[string]bool // values the partner holds as victims' records: hits of safeguarding queries only
	hold      chan struct{}   // non-nil: QueryProgress waits on it before the second partner answers
	followups []httpapi.FollowupInboxItem
	sent      []httpapi.SentFollowup
	hitCount  map[string]int // query ID to the partner's hits, for follow-ups
}

// NewFake returns a fake node with a ledger of n entries over the days
// before now; the partner holds the canonical values held. With approval,
// every new query waits for an approver.
func NewFake(now time.Time, n int, held []string, approval bool) (*Fake, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, format.Origin(Agency))
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	_, wpriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cosigner, err := exchange.NewCosigner(Partner, wpriv)
	if err != nil {
		return nil, err
	}
	wkey, err := exchange.WitnessVerifierKey(Partner, wpriv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	f := &Fake{LedgerKey: vkey, signer: signer, cosigner: cosigner, witness: wkey, users: slices.Clone(Users),
		held: map[string]bool{}, approval: approval, commits: map[string]string{}, victims: map[string]bool{}}
	for _, v := range held {
		f.held[v] = true
	}
	types := []ledger.Type{format.TypePolicy, format.TypeUser, format.TypePartner, format.TypeImport, format.TypeEpoch,
		format.TypeMatchOut, format.TypeMatchResult, format.TypeMatchIn, format.TypeSync, format.TypeDenial}
	start := now.Add(-time.Duration(n) * 3 * time.Hour)
	for i := range n {
		t := types[i%len(types)]
		if i >= len(types) {
			t = types[5+i%5] // the day-to-day traffic
		}
		h := format.Header{Time: start.Add(time.Duration(i) * 3 * time.Hour), Type: t, Agency: Agency,
			Kind: "phone", PolicyVersion: "v1-3f2a", Replica: "gb-1", Outcome: format.OutcomeOK}
		b := format.Body{Actor: "ivy", Purpose: "identify victims", LegalBasis: "MSA 2015 s.1", Offence: "thb", CaseRef: fmt.Sprintf("OP-%03d", i/3)}
		switch t {
		case format.TypeMatchOut, format.TypeMatchResult, format.TypeMatchIn, format.TypeSync, format.TypeDenial:
			h.Partner, h.RequestID, h.Epoch, h.PaddedSize = Partner, fmt.Sprintf("req-%04d", i/2), 3, 64
		}
		if t == format.TypeDenial {
			h.Outcome = format.OutcomeDeniedBudget
		}
		if t == format.TypeMatchResult {
			h.HitCount = uint64(i % 3)
		}
		f.append(h, b)
	}
	f.sign()
	return f, nil
}

// RemoveUser removes a user, as an admin would through the API.
func (f *Fake) RemoveUser(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = slices.DeleteFunc(f.users, func(u httpapi.User) bool { return u.Name == name })
}
func (f *Fake) Authenticate(token string) (httpapi.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if token == Token(u.Name) {
			return u, nil
		}
	}
	return httpapi.User{}, fmt.Errorf("authenticate: token of no user: %w", httpapi.ErrUnauthorized)
}
func (f *Fake) Authorize(u httpapi.User, action string) error {
	if slices.Contains(permits[u.Role], action) {
		return nil
	}
	return fmt.Errorf("role %s may not %s under the policy in force: %w", u.Role, action, httpapi.ErrForbidden)
}
func (f *Fake) Users(ctx context.Context) ([]httpapi.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.users), nil
}
func (f *Fake) Status() httpapi.Status {
	f.mu.Lock()
	n := uint64(len(f.entries))
	f.mu.Unlock()
	return httpapi.Status{Agency: Agency, Replica: "gb-1", PeerID: "12D3KooWFakeGB1", Policy: "v1-3f2a", Partners: 3,
		Groups: []httpapi.Group{
			{Name: "audit", State: "Leader", Leader: "gb-1", Quorum: true, Healthy: true, Applied: n + 40, Commit: n + 40, Size: n},
			{Name: "data", State: "Follower", Leader: "gb-2", Quorum: true, Healthy: true, Applied: 2210, Commit: 2210, Size: 2100},
		},
		Witness: &httpapi.WitnessStatus{CosignedSize: n, Cosignatures: 1, Witnesses: 1}}
}
func (f *Fake) Replicas(ctx context.Context) ([]httpapi.Replica, error) {
	return []httpapi.Replica{{ID: "gb-1", Addr: "127.0.0.1:7101", Suffrage: "Voter", Leader: true},
		{ID: "gb-2", Addr: "127.0.0.1:7102", Suffrage: "Voter"}, {ID: "gb-3", Addr: "127.0.0.1:7103", Suffrage: "Voter"}}, nil
}
func (f *Fake) Partners(ctx context.Context) ([]httpapi.Partner, error) {
	return []httpapi.Partner{{Agency: Partner, Name: "Royal Thai Police", Fingerprint: "th-5c1e", Sequence: 4,
		Expires: time.Now().Add(90 * 24 * time.Hour), Replicas: []string{"a", "b", "c"}, Witness: f.witness}}, nil
}
func (f *Fake) PolicyVersion() string { return "v1-3f2a" }

// DataStats describes the fake's holdings.
func (f *Fake) DataStats(ctx context.Context, u httpapi.User) (httpapi.DataStats, error) {
	return httpapi.DataStats{Epoch: 3, Kinds: []httpapi.KindStats{
		{Kind: "phone", Rows: 1200, Epoch: 3, Versions: 4, Built: 4, Entries: 2048,
			Classes: map[string]int{"suspect": 700, "unknown": 420, "victim": 80}},
		{Kind: "email", Rows: 310, Epoch: 3, Versions: 2, Built: 2, Entries: 512,
			Classes: map[string]int{"suspect": 110, "unknown": 200}},
	}, Sets: []httpapi.SetStats{
		{Kind: "phone", Epoch: 3, Reach: "open", Version: 4, Digest: "9f2c41d0", Serving: true},
		{Kind: "phone", Epoch: 3, Reach: "victim", Version: 1, Digest: "5b0e77c2", Serving: true},
		{Kind: "email", Epoch: 3, Reach: "open", Version: 2, Digest: "07aa3e11", Serving: true},
	}}, nil
}

// Query runs a query against the partner's holdings: with approval, a
// new query waits for an approver, and an approved one runs once.
func (f *Fake) Query(ctx context.Context, u httpapi.User, req httpapi.QueryRequest) (httpapi.QueryResult, error) {
	if err := f.Authorize(u, "match"); err != nil {
		return httpapi.QueryResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := make([]byte, 16)
	rand.Read(key)
	mode := req.Mode
	if mode == "" {
		mode = "enforcement"
	}
	res := httpapi.QueryResult{ID: req.ID, Kind: req.Kind, Values: len(req.Values), PaddedSize: 64, CaseKey: hex.EncodeToString(key), Mode: mode}
	if f.approval || mode == "safeguarding" {
		if req.ID == "" {
			res.ID, res.Status = fmt.Sprintf("q-%d", len(f.queries)+1), "pending"
			f.queries = append(f.queries, httpapi.QueryRecord{ID: res.ID, User: u.Name, Kind: req.Kind, Case: req.Case,
				Basis: req.Basis, Offence: req.Offence, Purpose: req.Purpose, Urgent: req.Urgent, Mode: mode, Partners: []string{Partner},
				PaddedSize: 64, Created: time.Now(), Status: "pending", Commitment: commit(res.CaseKey, req.Values)})
			f.commits[res.ID] = commit(res.CaseKey, req.Values)
			return res, nil
		}
		i := slices.IndexFunc(f.queries, func(q httpapi.QueryRecord) bool { return q.ID == req.ID })
		if i < 0 || f.queries[i].Status != "approved" || f.commits[req.ID] != commit(req.CaseKey, req.Values) {
			return httpapi.QueryResult{}, fmt.Errorf("query %s is not approved for this list: %w", req.ID, httpapi.ErrForbidden)
		}
		f.queries[i].Status = "done"
		delete(f.commits, req.ID)
	} else {
		res.ID = fmt.Sprintf("q-%d", len(f.queries)+1)
	}
	res.Status = "done"
	pr := httpapi.PartnerResult{Agency: Partner, RequestID: "req-" + res.ID, Outcome: httpapi.OutcomeNoHits, Millis: 42}
	for i, v := range req.Values {
		switch {
		case f.held[v]:
			pr.Hits, pr.HitReaches = append(pr.Hits, i), append(pr.HitReaches, "open")
			pr.HitNumbers = append(pr.HitNumbers, len(pr.Hits))
		case f.victims[v] && mode == "safeguarding":
			pr.Hits, pr.HitReaches = append(pr.Hits, i), append(pr.HitReaches, "victim")
			pr.HitNumbers = append(pr.HitNumbers, len(pr.Hits))
			pr.Handling, pr.Instruction = "H2", "contact the partner's victim liaison before any action"
		}
	}
	if f.hitCount == nil {
		f.hitCount = map[string]int{}
	}
	f.hitCount[res.ID] = len(pr.Hits)
	if pr.HitCount = len(pr.Hits); pr.HitCount > 0 {
		pr.Outcome = httpapi.OutcomeHits
	}
	res.Partners = []httpapi.PartnerResult{pr, {Agency: "FR", Outcome: httpapi.OutcomeDenied, Reason: "no agreement for kind phone"}}
	// The node records the query with its padded size and hit count only.
	f.append(format.Header{Time: time.Now(), Type: format.TypeMatchOut, Agency: Agency, Partner: Partner, Kind: req.Kind,
		RequestID: pr.RequestID, PaddedSize: 64, Outcome: format.OutcomeOK},
		format.Body{Actor: u.Name, LegalBasis: req.Basis, Offence: req.Offence, CaseRef: req.Case, Purpose: req.Purpose})
	f.sign()
	return res, nil
}
func (f *Fake) Queries(ctx context.Context, u httpapi.User, pending bool) ([]httpapi.QueryRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []httpapi.QueryRecord
	for _, q := range f.queries {
		if !pending || q.Status == "pending" {
			out = append(out, q)
		}
	}
	return out, nil
}
func (f *Fake) Approve(ctx context.Context, u httpapi.User, id string) (httpapi.QueryRecord, error) {
	if err := f.Authorize(u, "approve"); err != nil {
		return httpapi.QueryRecord{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.queries, func(q httpapi.QueryRecord) bool { return q.ID == id })
	if i < 0 {
		return httpapi.QueryRecord{}, fmt.Errorf("no query %q: %w", id, httpapi.ErrNotFound)
	}
	if f.queries[i].Status != "pending" {
		return httpapi.QueryRecord{}, fmt.Errorf("query %s is %s: %w", id, f.queries[i].Status, httpapi.ErrConflict)
	}
	f.queries[i].Status, f.queries[i].Approver, f.queries[i].Approved = "approved", u.Name, time.Now()
	f.append(format.Header{Time: time.Now(), Type: format.TypeApproval, Agency: Agency, RequestID: id, Outcome: format.OutcomeOK},
		format.Body{Actor: u.Name, Approver: u.Name})
	f.sign()
	return f.queries[i], nil
}

// Refuse refuses a pending query with a reason (the fake is a
// console.Refuser, as node will be).
func (f *Fake) Refuse(ctx context.Context, u httpapi.User, id, reason string) (httpapi.QueryRecord, error) {
	if err := f.Authorize(u, "approve"); err != nil {
		return httpapi.QueryRecord{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.queries, func(q httpapi.QueryRecord) bool { return q.ID == id })
	if i < 0 {
		return httpapi.QueryRecord{}, fmt.Errorf("no query %q: %w", id, httpapi.ErrNotFound)
	}
	if f.queries[i].Status != "pending" {
		return httpapi.QueryRecord{}, fmt.Errorf("query %s is %s: %w", id, f.queries[i].Status, httpapi.ErrConflict)
	}
	f.queries[i].Status, f.queries[i].Approver, f.queries[i].Reason = "refused", u.Name, reason
	delete(f.commits, id)
	f.append(format.Header{Time: time.Now(), Type: format.TypeApproval, Agency: Agency, RequestID: id, Outcome: format.OutcomeDenied},
		format.Body{Actor: u.Name, Approver: u.Name, Purpose: "refused: " + reason})
	f.sign()
	return f.queries[i], nil
}

// commit is the fake's query-set commitment: an HMAC of the values under
// the case key, which the fake does not keep.
func commit(caseKey string, values []string) string {
	m := hmac.New(sha256.New, []byte(caseKey))
	for _, v := range values {
		m.Write([]byte(v + "\n"))
	}
	return hex.EncodeToString(m.Sum(nil))
}

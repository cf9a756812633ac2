package policy

import (
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// examples parses examples/policy/, the files the CLI, the docs and the
// testnet use.
func examples(tb testing.TB) *Set {
	tb.Helper()
	p, err := os.ReadFile("../examples/policy/policy.cedar")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := os.ReadFile("../examples/policy/limits.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Parse(Files{PolicyName: "policy.cedar", Policy: p, LimitsName: "limits.yaml", Limits: l})
	if err != nil {
		tb.Fatalf("Parse(examples) = %v", err)
	}
	return s
}

var noon = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// inbound is a well-formed match from partner cc.
func inbound(cc, kind string, size int) Request {
	return Request{
		Principal: Principal{Agency: cc},
		Action:    "match",
		Kind:      kind,
		Context: Context{
			Purpose: "identify a trafficking network", LegalBasis: "Prüm II art. 6",
			Offence: "thb", CaseRef: "OP-1", PaddedSize: size,
		},
		Time:  noon,
		Epoch: 7,
	}
}

// local is a well-formed match by a local user with role, to partner cc.
func local(role, cc, kind string, size int) Request {
	r := inbound("", kind, size)
	r.Principal = Principal{User: "alice", Role: role}
	r.Partner = cc
	return r
}

// user is a request by a local user with role for an action on the node.
func user(role, action string) Request {
	return Request{Principal: Principal{User: "bob", Role: role}, Action: action, Time: noon}
}

func with(r Request, f func(*Request)) Request { f(&r); return r }

// inboundReserve is what an allowed inbound match of size from cc reserves
// with the example limits.
func inboundReserve(cc, kind string, size, daily, globalCap, keyEvals int64) []Reservation {
	return []Reservation{
		{Key: "partner/" + cc + "/" + kind + "/DAY", Amount: size, Limit: daily},
		{Key: "kind/" + kind + "/DAY", Amount: size, Limit: globalCap},
		{Key: "case/partner/" + cc + ":OP-1", Amount: size, Limit: 20000},
		{Key: "key/7/" + kind, Amount: size, Limit: keyEvals},
	}
}

func TestDecideExamples(t *testing.T) {
	s := examples(t)
	tests := []struct {
		name       string
		req        Request
		reasons    []string // nil: allowed
		reserve    []Reservation
		approval   bool
		handling   string
		disclosure string
	}{
		// Allowed inbound paths.
		{name: "GB phone allowed", req: inbound("GB", "phone", 1024),
			reserve: inboundReserve("GB", "phone", 1024, 100000, 400000, 2000000), handling: "H2", disclosure: "hits"},
		{name: "TH btc allowed", req: inbound("TH", "btc", 512),
			reserve: inboundReserve("TH", "btc", 512, 10000, 100000, 500000), handling: "H1", disclosure: "hits"},
		{name: "DE iban allowed", req: inbound("DE", "iban", 1024),
			reserve: inboundReserve("DE", "iban", 1024, 10000, 100000, 500000), handling: "H3", disclosure: "hits"},
		{name: "GB document at night is an inbound query too", req: with(inbound("GB", "document", 256), func(r *Request) { r.Time = noon.Add(11 * time.Hour) }),
			reasons: []string{"outside_hours"}, handling: "H3", disclosure: "hits"},
		// Partner and kind.
		{name: "unknown partner", req: inbound("US", "phone", 1024),
			reasons: []string{ReasonUnknownPartner, ReasonNotPermitted}},
		{name: "kind not allowed for TH", req: inbound("TH", "iban", 1024),
			reasons: []string{ReasonKindNotAllowed, ReasonNotPermitted}},
		{name: "kind not allowed for DE", req: inbound("DE", "btc", 64),
			reasons: []string{ReasonKindNotAllowed, ReasonNotPermitted}},
		// Size, legal basis, case reference, purpose, offence.
		{name: "size over the TH phone cap", req: inbound("TH", "phone", 4096),
			reasons: []string{ReasonSizeOverCap}, handling: "H2", disclosure: "hits"},
		{name: "size at the TH phone cap", req: inbound("TH", "phone", 2048),
			reserve: inboundReserve("TH", "phone", 2048, 20000, 400000, 2000000), handling: "H2", disclosure: "hits"},
		{name: "zero size", req: inbound("TH", "phone", 0),
			reasons: []string{ReasonBadSize}, handling: "H2", disclosure: "hits"},
		{name: "missing legal basis", req: with(inbound("GB", "phone", 64), func(r *Request) { r.Context.LegalBasis = "" }),
			reasons: []string{ReasonMissingLegalBasis}, handling: "H2", disclosure: "hits"},
		{name: "missing case reference", req: with(inbound("GB", "phone", 64), func(r *Request) { r.Context.CaseRef = "" }),
			reasons: []string{ReasonMissingCaseRef}, handling: "H2", disclosure: "hits"},
		{name: "missing purpose", req: with(inbound("GB", "phone", 64), func(r *Request) { r.Context.Purpose = "" }),
			reasons: []string{ReasonMissingPurpose}, handling: "H2", disclosure: "hits"},
		{name: "offence outside the list", req: with(inbound("GB", "phone", 64), func(r *Request) { r.Context.Offence = "fraud" }),
			reasons: []string{ReasonOffenceNotListed}, handling: "H2", disclosure: "hits"},
		{name: "every reason at once", req: with(inbound("TH", "phone", 8192), func(r *Request) {
			r.Context = Context{PaddedSize: 8192}
		}), reasons: []string{ReasonSizeOverCap, ReasonMissingLegalBasis, ReasonMissingCaseRef, ReasonMissingPurpose, ReasonOffenceNotListed},
			handling: "H2", disclosure: "hits"},
		{name: "DE refuses money laundering by a forbid", req: with(inbound("DE", "phone", 64), func(r *Request) { r.Context.Offence = "money_laundering" }),
			reasons: []string{"outside_agreement"}, handling: "H2", disclosure: "hits"},
		{name: "GB money laundering allowed", req: with(inbound("GB", "iban", 64), func(r *Request) { r.Context.Offence = "money_laundering" }),
			reserve: inboundReserve("GB", "iban", 64, 20000, 100000, 500000), handling: "H3", disclosure: "hits"},
		// Budgets.
		{name: "partner budget exhausted", req: with(inbound("TH", "phone", 2048), func(r *Request) {
			r.Used = map[string]int64{"partner/TH/phone/DAY": 18000}
		}), reasons: []string{ReasonPartnerBudget}, handling: "H2", disclosure: "hits"},
		{name: "partner budget filled exactly", req: with(inbound("TH", "phone", 2048), func(r *Request) {
			r.Used = map[string]int64{"partner/TH/phone/DAY": 17952}
		}), reserve: inboundReserve("TH", "phone", 2048, 20000, 400000, 2000000), handling: "H2", disclosure: "hits"},
		{name: "urgent query uses the partner reserve", req: with(inbound("TH", "phone", 2048), func(r *Request) {
			r.Used = map[string]int64{"partner/TH/phone/DAY": 18000}
			r.Context.Urgent = true
		}), reserve: []Reservation{
			{Key: "partner/TH/phone/DAY", Amount: 2048, Limit: 25000},
			{Key: "kind/phone/DAY", Amount: 2048, Limit: 400000},
			{Key: "case/partner/TH:OP-1", Amount: 2048, Limit: 25000},
			{Key: "key/7/phone", Amount: 2048, Limit: 2000000},
		}, handling: "H2", disclosure: "hits"},
		{name: "urgent query beyond the reserve", req: with(inbound("TH", "phone", 2048), func(r *Request) {
			r.Used = map[string]int64{"partner/TH/phone/DAY": 23000}
			r.Context.Urgent = true
		}), reasons: []string{ReasonPartnerBudget}, handling: "H2", disclosure: "hits"},
		{name: "case budget exhausted", req: with(inbound("GB", "phone", 1024), func(r *Request) {
			r.Used = map[string]int64{"case/partner/GB:OP-1": 19500}
		}), reasons: []string{ReasonCaseBudget}, handling: "H2", disclosure: "hits"},
		{name: "case budgets of partners do not meet", req: with(inbound("GB", "phone", 1024), func(r *Request) {
			r.Used = map[string]int64{"case/partner/TH:OP-1": 20000, "case/local/OP-1": 20000}
		}), reserve: inboundReserve("GB", "phone", 1024, 100000, 400000, 2000000), handling: "H2", disclosure: "hits"},
		{name: "global cap reached", req: with(inbound("NL", "btc", 1024), func(r *Request) {
			r.Used = map[string]int64{"kind/btc/DAY": 99500}
		}), reasons: []string{ReasonKindCap}, handling: "H1", disclosure: "hits"},
		{name: "urgency does not lift the global cap", req: with(inbound("NL", "btc", 1024), func(r *Request) {
			r.Used = map[string]int64{"kind/btc/DAY": 99500}
			r.Context.Urgent = true
		}), reasons: []string{ReasonKindCap}, handling: "H1", disclosure: "hits"},
		{name: "responder key exhausted", req: with(inbound("FR", "phone", 1024), func(r *Request) {
			r.Used = map[string]int64{"key/7/phone": 1999000}
		}), reasons: []string{ReasonKeyExhausted}, handling: "H2", disclosure: "hits"},
		{name: "a new epoch has a fresh key budget", req: with(inbound("FR", "phone", 1024), func(r *Request) {
			r.Used = map[string]int64{"key/6/phone": 2000000}
		}), reserve: inboundReserve("FR", "phone", 1024, 50000, 400000, 2000000), handling: "H2", disclosure: "hits"},
		{name: "a used amount near the int64 limit does not wrap", req: with(inbound("GB", "phone", 1024), func(r *Request) {
			r.Used = map[string]int64{"partner/GB/phone/DAY": math.MaxInt64}
		}), reasons: []string{ReasonPartnerBudget}, handling: "H2", disclosure: "hits"},
		{name: "a negative used amount is refused", req: with(inbound("GB", "phone", 1024), func(r *Request) {
			r.Used = map[string]int64{"kind/phone/DAY": -1000000}
		}), reasons: []string{ReasonBadRequest}, handling: "H2", disclosure: "hits"},
		{name: "a huge padded size does not wrap", req: inbound("GB", "phone", math.MaxInt),
			reasons: []string{ReasonSizeOverCap, ReasonPartnerBudget, ReasonKindCap, ReasonCaseBudget, ReasonKeyExhausted}, handling: "H2", disclosure: "hits"},
		{name: "slashes in a case reference stay in one key segment", req: with(local("investigator", "GB", "phone", 64), func(r *Request) {
			r.Context.CaseRef = "OP/DAY/17%"
		}), reserve: []Reservation{{Key: "case/local/OP%2FDAY%2F17%25", Amount: 64, Limit: 20000}}, handling: "H2", disclosure: "hits"},
		{name: "a local case named DAY is refused", req: with(local("investigator", "GB", "phone", 64), func(r *Request) {
			r.Context.CaseRef = "DAY"
		}), reasons: []string{ReasonBadRequest}},
		{name: "an inbound case named DAY keeps the partner prefix", req: with(inbound("NL", "eth", 8), func(r *Request) {
			r.Context.CaseRef = "DAY"
		}), reserve: []Reservation{
			{Key: "partner/NL/eth/DAY", Amount: 8, Limit: 10000},
			{Key: "kind/eth/DAY", Amount: 8, Limit: 100000},
			{Key: "case/partner/NL:DAY", Amount: 8, Limit: 20000},
			{Key: "key/7/eth", Amount: 8, Limit: 500000},
		}, handling: "H1", disclosure: "hits"},
		{name: "an overlong case reference is refused", req: with(inbound("GB", "phone", 64), func(r *Request) {
			r.Context.CaseRef = strings.Repeat("x", 129)
		}), reasons: []string{ReasonBadRequest}},
		{name: "a control character in a case reference is refused", req: with(inbound("GB", "phone", 64), func(r *Request) {
			r.Context.CaseRef = "OP-1\n"
		}), reasons: []string{ReasonBadRequest}},
		// Sync.
		{name: "TH syncs phone", req: Request{Principal: Principal{Agency: "TH"}, Action: "sync", Kind: "phone", Time: noon},
			handling: "H2", disclosure: "hits"},
		{name: "TH may not sync iban", req: Request{Principal: Principal{Agency: "TH"}, Action: "sync", Kind: "iban", Time: noon},
			reasons: []string{ReasonKindNotAllowed, ReasonNotPermitted}},
		{name: "a partner may not read the ledger", req: Request{Principal: Principal{Agency: "GB"}, Action: "read_ledger", Time: noon},
			reasons: []string{ReasonNotPermitted}},
		// Local queries, approval and urgency.
		{name: "investigator matches GB", req: local("investigator", "GB", "phone", 512),
			reserve: []Reservation{{Key: "case/local/OP-1", Amount: 512, Limit: 20000}}, handling: "H2", disclosure: "hits"},
		{name: "large local query needs approval", req: local("investigator", "GB", "phone", 2048),
			reasons: []string{ReasonNeedsApproval}, approval: true, handling: "H2", disclosure: "hits"},
		{name: "large local query approved", req: with(local("investigator", "GB", "phone", 2048), func(r *Request) { r.Approved = true }),
			reserve: []Reservation{{Key: "case/local/OP-1", Amount: 2048, Limit: 20000}}, approval: true, handling: "H2", disclosure: "hits"},
		{name: "document kind needs approval", req: local("investigator", "FR", "document", 64),
			reasons: []string{ReasonNeedsApproval}, approval: true, handling: "H3", disclosure: "hits"},
		{name: "organ removal needs approval", req: with(local("investigator", "GB", "phone", 64), func(r *Request) { r.Context.Offence = "organ_removal" }),
			reasons: []string{ReasonNeedsApproval}, approval: true, handling: "H2", disclosure: "hits"},
		{name: "urgency does not skip approval", req: with(local("investigator", "GB", "phone", 2048), func(r *Request) { r.Context.Urgent = true }),
			reasons: []string{ReasonNeedsApproval}, approval: true, handling: "H2", disclosure: "hits"},
		{name: "approved document query at night", req: with(local("investigator", "GB", "document", 64), func(r *Request) {
			r.Approved = true
			r.Time = time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC)
		}), reasons: []string{"outside_hours"}, approval: true, handling: "H3", disclosure: "hits"},
		{name: "urgent approved document query at night", req: with(local("investigator", "GB", "document", 64), func(r *Request) {
			r.Approved = true
			r.Context.Urgent = true
			r.Time = time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC)
		}), reserve: []Reservation{{Key: "case/local/OP-1", Amount: 64, Limit: 25000}}, approval: true, handling: "H3", disclosure: "hits"},
		{name: "local case budget exhausted", req: with(local("investigator", "DE", "email", 1024), func(r *Request) {
			r.Used = map[string]int64{"case/local/OP-1": 19000}
		}), reasons: []string{ReasonCaseBudget}, handling: "H2", disclosure: "hits"},
		{name: "urgent local query uses the case reserve", req: with(local("investigator", "DE", "email", 1024), func(r *Request) {
			r.Used = map[string]int64{"case/local/OP-1": 19000}
			r.Context.Urgent = true
		}), reserve: []Reservation{{Key: "case/local/OP-1", Amount: 1024, Limit: 25000}}, handling: "H2", disclosure: "hits"},
		{name: "local query to an unknown partner", req: local("investigator", "US", "phone", 64),
			reasons: []string{ReasonUnknownPartner}},
		{name: "local query of a kind TH does not exchange", req: local("investigator", "TH", "iban", 64),
			reasons: []string{ReasonKindNotAllowed}},
		{name: "local query over the partner's cap", req: with(local("investigator", "TH", "phone", 4096), func(r *Request) { r.Approved = true }),
			reasons: []string{ReasonSizeOverCap}, approval: true, handling: "H2", disclosure: "hits"},
		// roleNames.
		{name: "investigator tries read_ledger", req: user("investigator", "read_ledger"),
			reasons: []string{ReasonNotPermitted}},
		{name: "auditor tries match", req: local("auditor", "GB", "phone", 64),
			reasons: []string{ReasonNotPermitted}, handling: "H2", disclosure: "hits"},
		{name: "auditor reads the ledger", req: user("auditor", "read_ledger")},
		{name: "auditor exports the ledger", req: user("auditor", "export")},
		{name: "auditor tries manage_users", req: user("auditor", "manage_users"),
			reasons: []string{ReasonNotPermitted}},
		{name: "steward imports", req: with(user("steward", "import"), func(r *Request) { r.Kind = "iban" })},
		{name: "steward tries match", req: local("steward", "GB", "phone", 64),
			reasons: []string{ReasonNotPermitted}, handling: "H2", disclosure: "hits"},
		{name: "approver approves", req: with(user("approver", "approve"), func(r *Request) { r.Kind = "document" })},
		{name: "investigator tries approve", req: with(user("investigator", "approve"), func(r *Request) { r.Kind = "phone" }),
			reasons: []string{ReasonNotPermitted}},
		{name: "admin bootstrap: manage_policy", req: user("admin", "manage_policy")},
		{name: "admin bootstrap: manage_keys", req: user("admin", "manage_keys")},
		{name: "admin may not match", req: local("admin", "GB", "phone", 64),
			reasons: []string{ReasonNotPermitted}, handling: "H2", disclosure: "hits"},
		{name: "investigator tries manage_partners", req: user("investigator", "manage_partners"),
			reasons: []string{ReasonNotPermitted}},
		// Malformed requests.
		{name: "unknown action", req: user("auditor", "delete"), reasons: []string{ReasonBadRequest}},
		{name: "unknown kind", req: local("investigator", "GB", "passport", 64), reasons: []string{ReasonBadRequest}},
		{name: "unknown role", req: user("director", "read_ledger"), reasons: []string{ReasonBadRequest}},
		{name: "no principal", req: Request{Action: "read_ledger"}, reasons: []string{ReasonBadRequest}},
		{name: "agency and user at once", req: with(inbound("GB", "phone", 64), func(r *Request) { r.Principal.User = "alice" }),
			reasons: []string{ReasonBadRequest}},
	}
	if len(tests) < 30 {
		t.Fatalf("%d cases; the issue asks for at least 30", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.req)
			if got := reasonIDs(d); !reflect.DeepEqual(got, tt.reasons) {
				t.Errorf("reasons = %v (%v); want %v", got, d.Reasons, tt.reasons)
			}
			if d.Allow != (tt.reasons == nil) {
				t.Errorf("Allow = %v; want %v", d.Allow, tt.reasons == nil)
			}
			if !reflect.DeepEqual(d.Reserve, tt.reserve) {
				t.Errorf("Reserve = %v; want %v", d.Reserve, tt.reserve)
			}
			if d.NeedsApproval != tt.approval {
				t.Errorf("NeedsApproval = %v; want %v", d.NeedsApproval, tt.approval)
			}
			if d.Handling != tt.handling || d.Disclosure != tt.disclosure {
				t.Errorf("Handling, Disclosure = %q, %q; want %q, %q", d.Handling, d.Disclosure, tt.handling, tt.disclosure)
			}
			if d.Version != s.Version() {
				t.Errorf("Version = %q; want %q", d.Version, s.Version())
			}
			// Messages never repeat the request's free text.
			c := tt.req.Context
			free := []string{c.CaseRef, c.Purpose, c.LegalBasis}
			for _, v := range []struct {
				s     string
				known []string
			}{{c.Offence, s.Offences()}, {tt.req.Kind, kindNames}, {tt.req.Action, actionNames}, {tt.req.Principal.Role, roleNames}} {
				if !slices.Contains(v.known, v.s) {
					free = append(free, v.s)
				}
			}
			for _, r := range d.Reasons {
				if r.Message == "" {
					t.Errorf("reason %s has no message", r.ID)
				}
				for _, f := range free {
					if f != "" && strings.Contains(r.Message, f) {
						t.Errorf("reason %s message %q repeats the request's %q", r.ID, r.Message, f)
					}
				}
			}
		})
	}
}

func reasonIDs(d Decision) []string {
	var ids []string
	for _, r := range d.Reasons {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestDecideDefault(t *testing.T) {
	s := Default()
	tests := []struct {
		name    string
		req     Request
		allow   bool
		reasons []string
	}{
		{"partner gets nothing", inbound("GB", "phone", 64), false, []string{ReasonUnknownPartner, ReasonOffenceNotListed, ReasonNotPermitted}},
		{"partner cannot sync", Request{Principal: Principal{Agency: "GB"}, Action: "sync", Kind: "phone"}, false, []string{ReasonUnknownPartner, ReasonNotPermitted}},
		{"investigator cannot match", local("investigator", "GB", "phone", 64), false, []string{ReasonUnknownPartner, ReasonOffenceNotListed, ReasonNotPermitted}},
		{"auditor reads the ledger", user("auditor", "read_ledger"), true, nil},
		{"auditor cannot export", user("auditor", "export"), false, []string{ReasonNotPermitted}},
		{"steward cannot import", with(user("steward", "import"), func(r *Request) { r.Kind = "phone" }), false, []string{ReasonNotPermitted}},
		{"admin bootstrap: manage_users", user("admin", "manage_users"), true, nil},
		{"admin bootstrap: manage_partners", user("admin", "manage_partners"), true, nil},
		{"admin bootstrap: manage_keys", user("admin", "manage_keys"), true, nil},
		{"admin bootstrap: manage_policy", user("admin", "manage_policy"), true, nil},
		{"admin cannot read the ledger", user("admin", "read_ledger"), false, []string{ReasonNotPermitted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.req)
			if d.Allow != tt.allow || !reflect.DeepEqual(reasonIDs(d), tt.reasons) {
				t.Errorf("Decide = %v %v; want %v %v", d.Allow, reasonIDs(d), tt.allow, tt.reasons)
			}
			if d.Reserve != nil {
				t.Errorf("Reserve = %v; want none", d.Reserve)
			}
		})
	}
	if s.Version() != "" || Default() != s {
		t.Errorf("Default().Version() = %q; want the ledger's version before any policy, \"\"", s.Version())
	}
}

// TestBudgetKeys pins the key shapes of DESIGN.md ("Seams").
func TestBudgetKeys(t *testing.T) {
	s := examples(t)
	shapes := []*regexp.Regexp{
		regexp.MustCompile(`^partner/[A-Z]{2}/[a-z]+/DAY$`),
		regexp.MustCompile(`^kind/[a-z]+/DAY$`),
		regexp.MustCompile(`^case/(local/[^/]+|partner/[A-Z]{2}:[^/]+)$`),
		regexp.MustCompile(`^key/[0-9]+/[a-z]+$`),
	}
	d := s.Decide(inbound("NL", "eth", 32))
	if len(d.Reserve) != len(shapes) {
		t.Fatalf("Reserve = %v; want %d keys", d.Reserve, len(shapes))
	}
	for i, re := range shapes {
		if !re.MatchString(d.Reserve[i].Key) {
			t.Errorf("key %d = %q; want %s", i, d.Reserve[i].Key, re)
		}
		if d.Reserve[i].Amount != 32 {
			t.Errorf("key %s amount = %d; want the padded size 32", d.Reserve[i].Key, d.Reserve[i].Amount)
		}
	}
}

// TestDecideConcurrent runs decisions from many goroutines (under -race)
// and checks each against the serial answer: Decide keeps no state.
func TestDecideConcurrent(t *testing.T) {
	s := examples(t)
	reqs := []Request{
		inbound("GB", "phone", 1024), inbound("TH", "iban", 64), local("investigator", "GB", "phone", 2048),
		user("auditor", "read_ledger"), user("admin", "manage_keys"),
		with(inbound("TH", "phone", 2048), func(r *Request) { r.Used = map[string]int64{"partner/TH/phone/DAY": 18000} }),
	}
	want := make([]Decision, len(reqs))
	for i, r := range reqs {
		want[i] = s.Decide(r)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(reqs))
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 50 {
				i := (g + n) % len(reqs)
				if got := s.Decide(reqs[i]); !reflect.DeepEqual(got, want[i]) {
					errs <- fmt.Sprintf("request %d: %+v; want %+v", i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestSetAccessors(t *testing.T) {
	s := examples(t)
	if got, want := s.Partners(), []string{"DE", "FR", "GB", "NL", "TH"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Partners() = %v; want %v", got, want)
	}
	if got, want := s.PartnerKinds("TH"), []string{"phone", "email", "btc", "eth"}; !reflect.DeepEqual(got, want) {
		t.Errorf("PartnerKinds(TH) = %v; want %v", got, want)
	}
	if got := s.PartnerKinds("US"); got != nil {
		t.Errorf("PartnerKinds(US) = %v; want none", got)
	}
	if got := s.Retention(); got != 730*24*time.Hour {
		t.Errorf("Retention() = %v; want 730 days", got)
	}
	if got := s.Offences(); len(got) != 5 || got[0] != "thb" {
		t.Errorf("Offences() = %v; want the five of the example", got)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(s.Version()) {
		t.Errorf("Version() = %q; want sha256:<64 hex>", s.Version())
	}
}

func BenchmarkDecide(b *testing.B) {
	s := examples(b)
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{"inbound/allow", with(inbound("GB", "phone", 1024), func(r *Request) {
			r.Used = map[string]int64{"partner/GB/phone/DAY": 5000, "kind/phone/DAY": 90000}
		})},
		{"inbound/deny", inbound("TH", "iban", 1024)},
		{"local/allow", local("investigator", "DE", "email", 512)},
		{"auditor/read_ledger", user("auditor", "read_ledger")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Decide(bc.req)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkBaselineSHA256 hashes 1 KiB: a fixed amount of work run beside
// BenchmarkDecide, so that docs/BENCHMARKS.md can quote a ratio that the
// load of this shared machine affects less than the absolute figures.
func BenchmarkBaselineSHA256(b *testing.B) {
	buf := make([]byte, 1024)
	for b.Loop() {
		sha256.Sum256(buf)
	}
}

// TestCaseBudgetKeysNeverCollide: a local case whose reference looks like a
// partner's code and reference, and that partner's inbound case, draw on two
// budgets; and no reference reaches another key or a DAY segment.
func TestCaseBudgetKeysNeverCollide(t *testing.T) {
	s := examples(t)
	caseKey := func(r Request) string {
		t.Helper()
		d := s.Decide(r)
		for _, x := range d.Reserve {
			if strings.HasPrefix(x.Key, "case/") {
				return x.Key
			}
		}
		t.Fatalf("Decide(%+v) = %+v; want a case reservation", r, d)
		return ""
	}
	in := caseKey(inbound("TH", "phone", 64))
	keys := map[string]string{in: "inbound OP-1 from TH"}
	for _, ref := range []string{"TH:OP-1", "OP-1", "in/TH/OP-1", "local/OP-1", "TH%3AOP-1", "x/DAY"} {
		k := caseKey(with(local("investigator", "TH", "phone", 64), func(r *Request) { r.Context.CaseRef = ref }))
		if other, ok := keys[k]; ok {
			t.Errorf("local case %q reserves %q, as does %s", ref, k, other)
		}
		keys[k] = fmt.Sprintf("local case %q", ref)
		if strings.Contains(k, "/DAY") {
			t.Errorf("local case %q reserves %q: a DAY segment", ref, k)
		}
	}
	for _, ref := range []string{"DAY", "TH:OP-1"} {
		k := caseKey(with(inbound("NL", "eth", 32), func(r *Request) { r.Context.CaseRef = ref }))
		if other, ok := keys[k]; ok {
			t.Errorf("inbound case %q from NL reserves %q, as does %s", ref, k, other)
		}
		keys[k] = fmt.Sprintf("inbound case %q from NL", ref)
		if strings.Contains(k, "/DAY") {
			t.Errorf("inbound case %q reserves %q: a DAY segment", ref, k)
		}
	}
}

// TestCedarDecidesAdminVerbs: once a policy is in force, Cedar decides the
// admin verbs for admins too, so an agency can restrict a second admin with
// a forbid; the default policy keeps the bootstrap rule.
func TestCedarDecidesAdminVerbs(t *testing.T) {
	p, err := os.ReadFile("../examples/policy/policy.cedar")
	if err != nil {
		t.Fatal(err)
	}
	l, err := os.ReadFile("../examples/policy/limits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p = append(p, []byte(`
@id("bob-no-users")
@reason("second_admin")
forbid (principal == User::"bob", action == Action::"manage_users", resource);
`)...)
	s, err := Parse(Files{PolicyName: "policy.cedar", Policy: p, LimitsName: "limits.yaml", Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	bob := user("admin", "manage_users")
	if d := s.Decide(bob); d.Allow {
		t.Errorf("admin bob manage_users under a forbid = %+v; want denied", d)
	}
	alice := with(bob, func(r *Request) { r.Principal.User = "alice" })
	for _, a := range []string{"manage_users", "manage_partners", "manage_keys", "manage_policy"} {
		if d := s.Decide(with(alice, func(r *Request) { r.Action = a })); !d.Allow {
			t.Errorf("admin alice %s under the examples = %+v; want allowed", a, d)
		}
		if d := Default().Decide(with(bob, func(r *Request) { r.Action = a })); !d.Allow {
			t.Errorf("admin bob %s under the default policy = %+v; want allowed (bootstrap)", a, d)
		}
	}
	// Without a permit for them, admins have no admin verb.
	noAdmins, err := Parse(Files{PolicyName: "policy.cedar", Policy: []byte(`@id("a") permit (principal in Role::"auditor", action == Action::"read_ledger", resource);`),
		LimitsName: "limits.yaml", Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	if d := noAdmins.Decide(with(alice, func(r *Request) { r.Action = "manage_policy" })); d.Allow {
		t.Errorf("admin manage_policy under a policy that permits no admin verb = %+v; want denied", d)
	}
}

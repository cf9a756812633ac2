package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestDecideModes: enforcement asks the open reach only, whatever the
// request asks; safeguarding asks the reaches of the partner's rule, with
// its own budget, handling code and instruction, and needs an approver on
// the querier's side.
func TestDecideModes(t *testing.T) {
	s := examples(t)
	sg := func(r *Request) { r.Context.Mode = "safeguarding" }
	reaches := func(rs ...string) func(*Request) { return func(r *Request) { r.Context.Reaches = rs } }
	both := func(fs ...func(*Request)) func(*Request) {
		return func(r *Request) {
			for _, f := range fs {
				f(r)
			}
		}
	}
	tests := []struct {
		name        string
		req         Request
		allow       bool
		reasons     []string
		mode        string
		reaches     []string
		handling    string
		instruction bool
	}{
		{"enforcement by default", inbound("GB", "phone", 64), true, nil, "enforcement", []string{"open"}, "H2", false},
		{"enforcement asks victim", with(inbound("GB", "phone", 64), reaches("open", "victim")), false, []string{ReasonReachNotAllowed}, "enforcement", []string{"open", "victim"}, "H2", false},
		{"enforcement asks witness alone", with(inbound("GB", "phone", 64), reaches("witness")), false, []string{ReasonReachNotAllowed}, "enforcement", []string{"witness"}, "H2", false},
		{"safeguarding, every reach of the rule", with(inbound("GB", "phone", 64), sg), true, nil, "safeguarding", []string{"open", "victim", "witness"}, "H3", true},
		{"safeguarding asks victim only", with(inbound("GB", "phone", 64), both(sg, reaches("victim"))), true, nil, "safeguarding", []string{"victim"}, "H3", true},
		{"safeguarding without a rule", with(inbound("DE", "email", 64), sg), false, []string{ReasonReachNotAllowed}, "safeguarding", nil, "H2", false},
		{"unknown mode", with(inbound("GB", "phone", 64), func(r *Request) { r.Context.Mode = "covert" }), false, []string{ReasonBadRequest}, "", nil, "H2", false},
		{"unknown reach", with(inbound("GB", "phone", 64), reaches("open", "suspect")), false, []string{ReasonBadRequest}, "", nil, "H2", false},
		{"reach twice", with(inbound("GB", "phone", 64), both(sg, reaches("victim", "victim"))), false, []string{ReasonBadRequest}, "", nil, "H2", false},
		{"local safeguarding needs an approver", with(local("investigator", "TH", "phone", 64), sg), false, []string{ReasonNeedsApproval}, "safeguarding", []string{"open", "victim", "witness"}, "H3", true},
		{"local safeguarding approved", with(local("investigator", "TH", "phone", 64), both(sg, func(r *Request) { r.Approved = true })), true, nil, "safeguarding", []string{"open", "victim", "witness"}, "H3", true},
		{"local enforcement needs none", local("investigator", "TH", "phone", 64), true, nil, "enforcement", []string{"open"}, "H2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.req)
			if d.Allow != tt.allow || !reflect.DeepEqual(reasonIDs(d), tt.reasons) {
				t.Fatalf("Decide: allow %v reasons %v; want %v %v (%+v)", d.Allow, reasonIDs(d), tt.allow, tt.reasons, d.Reasons)
			}
			if d.Mode != tt.mode || !reflect.DeepEqual(d.Reaches, tt.reaches) {
				t.Errorf("Decide: mode %q reaches %v; want %q %v", d.Mode, d.Reaches, tt.mode, tt.reaches)
			}
			if d.Handling != tt.handling || (d.Instruction != "") != tt.instruction {
				t.Errorf("Decide: handling %q instruction %q; want %q, instruction given %v", d.Handling, d.Instruction, tt.handling, tt.instruction)
			}
			for _, r := range d.Reasons {
				if strings.Contains(r.Message, "OP-1") {
					t.Errorf("reason %q repeats the case reference", r.Message)
				}
			}
		})
	}
}

// TestBudgetsPerMode: a safeguarding query draws on the safeguarding
// budget, an enforcement query on the partner's; each reach key evaluated
// has its own evaluation budget; one exhausted budget does not deny the
// other mode.
func TestBudgetsPerMode(t *testing.T) {
	s := examples(t)
	enf := s.Decide(inbound("GB", "phone", 64))
	sg := s.Decide(with(inbound("GB", "phone", 64), func(r *Request) { r.Context.Mode = "safeguarding" }))
	keys := func(d Decision) map[string]int64 {
		m := map[string]int64{}
		for _, r := range d.Reserve {
			m[r.Key] = r.Limit
		}
		return m
	}
	ek, sk := keys(enf), keys(sg)
	if ek["partner/GB/phone/DAY"] != 100000 || ek["safeguarding/GB/phone/DAY"] != 0 {
		t.Errorf("enforcement reserves %v; want partner/GB/phone/DAY at 100000 and no safeguarding budget", ek)
	}
	if sk["safeguarding/GB/phone/DAY"] != 2000 || sk["partner/GB/phone/DAY"] != 0 {
		t.Errorf("safeguarding reserves %v; want safeguarding/GB/phone/DAY at 2000 and not the partner budget", sk)
	}
	for _, k := range []string{"key/7/phone", "key/7/phone/victim", "key/7/phone/witness"} {
		if _, ok := sk[k]; !ok {
			t.Errorf("safeguarding reserves %v; want %s (one evaluation per reach key)", sk, k)
		}
	}
	if _, ok := ek["key/7/phone/victim"]; ok {
		t.Errorf("enforcement reserves the victim key: %v", ek)
	}
	// The safeguarding budget spent: safeguarding is denied, enforcement is not.
	used := map[string]int64{"safeguarding/GB/phone/DAY": 2000}
	d := s.Decide(with(inbound("GB", "phone", 64), func(r *Request) { r.Context.Mode = "safeguarding"; r.Used = used }))
	if d.Allow || !slices.Contains(reasonIDs(d), ReasonSafeguardBudget) {
		t.Errorf("safeguarding over its budget: allow %v reasons %v; want %s", d.Allow, reasonIDs(d), ReasonSafeguardBudget)
	}
	if d := s.Decide(with(inbound("GB", "phone", 64), func(r *Request) { r.Used = used })); !d.Allow {
		t.Errorf("enforcement with the safeguarding budget spent: %v; want allowed", d.Reasons)
	}
	// The partner budget spent: enforcement is denied, safeguarding is not.
	used = map[string]int64{"partner/GB/phone/DAY": 100000}
	if d := s.Decide(with(inbound("GB", "phone", 64), func(r *Request) { r.Used = used })); d.Allow {
		t.Errorf("enforcement over the partner budget allowed")
	}
	if d := s.Decide(with(inbound("GB", "phone", 64), func(r *Request) { r.Context.Mode = "safeguarding"; r.Used = used })); !d.Allow {
		t.Errorf("safeguarding with the enforcement budget spent: %v; want allowed", d.Reasons)
	}
}

// TestSyncReaches: a partner is synced the victim and witness sets only
// when its safeguarding rule reaches them.
func TestSyncReaches(t *testing.T) {
	s := examples(t)
	if got, want := s.SyncReaches("GB", "phone"), []string{"open", "victim", "witness"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SyncReaches(GB, phone) = %v; want %v", got, want)
	}
	if got, want := s.SyncReaches("DE", "email"), []string{"open"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SyncReaches(DE, email) = %v; want %v", got, want)
	}
	if got := s.SyncReaches("DE", "btc"); got != nil {
		t.Errorf("SyncReaches(DE, btc) = %v; want none", got)
	}
	syncReq := func(cc, kind, reach string) Request {
		return Request{Principal: Principal{Agency: cc}, Action: "sync", Kind: kind, Time: noon, Context: Context{Reaches: []string{reach}}}
	}
	if d := s.Decide(syncReq("DE", "email", "victim")); d.Allow || !slices.Contains(reasonIDs(d), ReasonReachNotAllowed) {
		t.Errorf("sync of DE's victim email set: allow %v %v; want %s", d.Allow, reasonIDs(d), ReasonReachNotAllowed)
	}
	if d := s.Decide(syncReq("GB", "phone", "victim")); !d.Allow || !reflect.DeepEqual(d.Reaches, []string{"victim"}) {
		t.Errorf("sync of GB's victim phone set: allow %v %v reaches %v; want allowed, [victim]", d.Allow, d.Reasons, d.Reaches)
	}
	if d := s.Decide(syncReq("DE", "email", "open")); !d.Allow {
		t.Errorf("sync of DE's open email set: %v; want allowed", d.Reasons)
	}
}

// TestCedarSeesModeAndReaches: a forbid on context.mode and
// context.reaches applies.
func TestCedarSeesModeAndReaches(t *testing.T) {
	lim := `version: 1
offences: [thb]
retention: 30d
kinds: {phone: {daily_cap: 1000, key_evaluations: 1000}}
partners:
  GB:
    phone: {max_query: 64, daily_budget: 100, disclosure: hits, handling: H2,
            safeguarding: {reaches: [open, victim], daily_budget: 10, handling: H3, instruction: "call the liaison"}}
`
	pol := `permit (principal == Agency::"GB", action == Action::"match", resource);
@reason("no_victim_on_weekends")
forbid (principal, action == Action::"match", resource)
when { context.mode == "safeguarding" && context.reaches.contains("victim") && context.weekday == 5 };
`
	s, err := Parse(Files{Policy: []byte(pol), Limits: []byte(lim)})
	if err != nil {
		t.Fatal(err)
	}
	r := inbound("GB", "phone", 8) // noon is a Friday
	r.Context.Mode = "safeguarding"
	if d := s.Decide(r); d.Allow || !slices.Contains(reasonIDs(d), "no_victim_on_weekends") {
		t.Errorf("safeguarding (every reach) on a Friday: allow %v %v; want no_victim_on_weekends", d.Allow, reasonIDs(d))
	}
	r.Context.Reaches = []string{"open"}
	if d := s.Decide(r); !d.Allow {
		t.Errorf("safeguarding asking open only: %v; want allowed", d.Reasons)
	}
	// witness is not in GB's rule.
	r.Context.Reaches = []string{"witness"}
	if d := s.Decide(r); d.Allow || !slices.Contains(reasonIDs(d), ReasonReachNotAllowed) {
		t.Errorf("safeguarding asking witness: allow %v %v; want %s", d.Allow, reasonIDs(d), ReasonReachNotAllowed)
	}
}

func TestParseSafeguardingErrors(t *testing.T) {
	base := `version: 1
offences: [thb]
retention: 30d
kinds: {phone: {daily_cap: 1000, key_evaluations: 1000}}
partners:
  GB:
    phone: {max_query: 64, daily_budget: 100, disclosure: hits, handling: H2,
            safeguarding: %s}
`
	tests := []struct{ rule, want string }{
		{`{reaches: [open, suspect], daily_budget: 10, handling: H3, instruction: "x"}`, `unknown reach "suspect"`},
		{`{reaches: [], daily_budget: 10, handling: H3, instruction: "x"}`, "reaches is empty"},
		{`{reaches: [victim], daily_budget: 10, handling: H3}`, `missing key "instruction"`},
		{`{reaches: [victim], daily_budget: 10, handling: H3, instruction: "  "}`, "instruction is empty"},
		{`{reaches: [victim], daily_budget: 0, handling: H3, instruction: "x"}`, "out of range"},
		{`{reaches: [victim], daily_budget: 10, handling: H9, instruction: "x"}`, "handling code"},
		{`{reaches: [victim], daily_budget: 10, handling: H3, instruction: "x", modes: 2}`, `unknown key "modes"`},
	}
	for _, tt := range tests {
		_, err := Parse(Files{Limits: []byte(strings.Replace(base, "%s", tt.rule, 1))})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(safeguarding %s) = %v; want an error containing %q", tt.rule, err, tt.want)
		}
	}
}

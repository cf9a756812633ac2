package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// followupReq is a well-formed inbound follow-up from partner cc.
func followupReq(cc, kind string) Request {
	return Request{
		Principal: Principal{Agency: cc},
		Action:    "followup",
		Kind:      kind,
		Context:   Context{Purpose: "identify the case officer", LegalBasis: "2006/960/JHA art. 4", Reaches: []string{"open"}},
		Time:      noon,
	}
}

// TestDecideFollowup: the example policy lets a partner follow up the kinds
// it may match, an investigator send one, the liaison answer, an auditor
// read; victim and witness hits only in safeguarding mode.
func TestDecideFollowup(t *testing.T) {
	s := examples(t)
	sg := func(reaches ...string) func(*Request) {
		return func(r *Request) { r.Context.Mode, r.Context.Reaches = "safeguarding", reaches }
	}
	tests := []struct {
		name    string
		req     Request
		reasons []string
		reaches []string
	}{
		{"partner, a kind it matches", followupReq("GB", "phone"), nil, []string{"open"}},
		{"partner, a kind it does not exchange", followupReq("TH", "iban"), []string{ReasonKindNotAllowed, ReasonNotPermitted}, []string{"open"}},
		{"unknown partner", followupReq("US", "phone"), []string{ReasonUnknownPartner, ReasonNotPermitted}, []string{"open"}},
		{"no legal basis", with(followupReq("GB", "phone"), func(r *Request) { r.Context.LegalBasis = "" }), []string{ReasonMissingLegalBasis}, []string{"open"}},
		{"no purpose", with(followupReq("GB", "phone"), func(r *Request) { r.Context.Purpose = "" }), []string{ReasonMissingPurpose}, []string{"open"}},
		{"victim hit in enforcement", with(followupReq("GB", "phone"), func(r *Request) { r.Context.Reaches = []string{"open", "victim"} }), []string{ReasonReachNotAllowed}, nil},
		{"victim hit in safeguarding", with(followupReq("GB", "phone"), sg("victim")), nil, []string{"victim"}},
		{"safeguarding without a rule", with(followupReq("GB", "email"), sg("witness")), []string{ReasonReachNotAllowed}, nil},
		{"unknown reach", with(followupReq("GB", "phone"), sg("suspect")), []string{ReasonBadRequest}, nil},
		{"investigator sends", with(followupReq("", "phone"), func(r *Request) {
			r.Principal, r.Partner = Principal{User: "ann", Role: "investigator"}, "TH"
		}), nil, []string{"open"}},
		{"steward may not send", with(followupReq("", "phone"), func(r *Request) {
			r.Principal, r.Partner = Principal{User: "sam", Role: "steward"}, "TH"
		}), []string{ReasonNotPermitted}, []string{"open"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.req)
			if d.Allow != (tt.reasons == nil) || !reflect.DeepEqual(reasonIDs(d), tt.reasons) {
				t.Fatalf("Decide: allow %v reasons %v; want %v (%+v)", d.Allow, reasonIDs(d), tt.reasons, d.Reasons)
			}
			if tt.reaches != nil && !reflect.DeepEqual(d.Reaches, tt.reaches) {
				t.Errorf("Decide: reaches %v; want %v", d.Reaches, tt.reaches)
			}
		})
	}
	for _, tt := range []struct {
		role, action string
		allow        bool
	}{
		{"liaison", "answer_followup", true},
		{"investigator", "answer_followup", false},
		{"auditor", "answer_followup", false},
		{"auditor", "read_followup", true},
		{"liaison", "read_followup", false},
		{"liaison", "match", false},
	} {
		r := Request{Principal: Principal{User: "u", Role: tt.role}, Action: tt.action, Kind: "phone", Time: noon}
		if d := s.Decide(r); d.Allow != tt.allow {
			t.Errorf("Decide(%s %s) allow = %v; want %v (%v)", tt.role, tt.action, d.Allow, tt.allow, reasonIDs(d))
		}
	}
	// A partner is never a user: answer_followup applies to users only.
	if d := s.Decide(Request{Principal: Principal{Agency: "GB"}, Action: "answer_followup", Kind: "phone", Time: noon}); d.Allow {
		t.Errorf("Decide(agency answer_followup) allowed")
	}
}

// TestFollowupLimits: the followups mapping of the limits file, its
// defaults, and its errors with their lines.
func TestFollowupLimits(t *testing.T) {
	s := examples(t)
	gb := s.Followup("GB")
	if gb.Window != 30*24*time.Hour || gb.Deadline != 7*24*time.Hour || gb.UrgentDeadline != 8*time.Hour || !reflect.DeepEqual(gb.AutoAnswer, []string{"eth"}) {
		t.Errorf("Followup(GB) = %+v", gb)
	}
	if !gb.AutoAnswers("eth") || gb.AutoAnswers("phone") {
		t.Errorf("Followup(GB).AutoAnswers: eth %v phone %v; want true false", gb.AutoAnswers("eth"), gb.AutoAnswers("phone"))
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := gb.DeadlineFor(at, true); !got.Equal(at.Add(8 * time.Hour)) {
		t.Errorf("DeadlineFor(urgent) = %v", got)
	}
	def := Followup{Window: DefaultFollowupWindow, Deadline: DefaultFollowupDeadline, UrgentDeadline: DefaultUrgentDeadline}
	if got := s.Followup("DE"); !reflect.DeepEqual(got, def) {
		t.Errorf("Followup(DE) = %+v; want the defaults %+v", got, def)
	}
	if got := Default().Followup("GB"); !reflect.DeepEqual(got, def) {
		t.Errorf("Default().Followup(GB) = %+v; want the defaults", got)
	}
	custom := minLimits + "followups:\n  GB: {window: 720h, deadline: 3d, urgent_deadline: 4h, auto_answer: [phone]}\n"
	ps, err := Parse(Files{PolicyName: "p.cedar", Policy: []byte(minPolicy), LimitsName: "l.yaml", Limits: []byte(custom)})
	if err != nil {
		t.Fatalf("Parse(followups) = %v", err)
	}
	if got := ps.Followup("GB"); got.Window != 720*time.Hour || got.Deadline != 72*time.Hour || got.UrgentDeadline != 4*time.Hour || !got.AutoAnswers("phone") {
		t.Errorf("Followup(GB) = %+v", got)
	}
	for _, tt := range []struct{ name, followups, reason string }{
		{"unknown partner", "  US: {window: 30d}", `"US" is not a partner`},
		{"unknown key", "  GB: {windows: 30d}", `unknown key "windows"`},
		{"bad period", "  GB: {window: soon}", "want a positive period"},
		{"zero days", "  GB: {deadline: 0d}", "want a whole number of days"},
		{"over a year", "  GB: {window: 9000h}", "at most a year"},
		{"urgent later than standard", "  GB: {deadline: 4h, urgent_deadline: 8h}", "later than deadline"},
		{"auto-answer a kind not exchanged", "  GB: {auto_answer: [email]}", "does not exchange"},
		{"auto-answer an unknown kind", "  GB: {auto_answer: [fone]}", `unknown kind "fone"`},
	} {
		_, err := Parse(Files{PolicyName: "p.cedar", Policy: []byte(minPolicy), LimitsName: "l.yaml",
			Limits: []byte(minLimits + "followups:\n" + tt.followups + "\n")})
		var fe *FileError
		if !errors.As(err, &fe) || fe.File != "l.yaml" || fe.Line != 12 || !strings.Contains(fe.Reason, tt.reason) {
			t.Errorf("%s: Parse = %v; want l.yaml:12 with %q", tt.name, err, tt.reason)
		}
	}
}

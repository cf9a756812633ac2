package policy

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimal files: every test below changes one line of them.
const minLimits = `version: 1
offences: [thb, forced_labour]
retention: 30d
kinds:
  phone: {daily_cap: 1000, key_evaluations: 5000}
partners:
  GB:
    phone: {max_query: 100, daily_budget: 500, disclosure: hits, handling: H1}
cases:
  budget: 200
`

const minPolicy = `// line 1
@id("gb")
permit (principal == Agency::"GB", action == Action::"match", resource == Kind::"phone")
when { context.legal_basis != "" };
`

func TestParseMinimal(t *testing.T) {
	s, err := Parse(Files{Policy: []byte(minPolicy), Limits: []byte(minLimits)})
	if err != nil {
		t.Fatalf("Parse(minimal) = %v", err)
	}
	if d := s.Decide(inbound("GB", "phone", 64)); !d.Allow {
		t.Errorf("Decide(GB phone) = %+v; want allow", d)
	}
	s2, err := Parse(Files{PolicyName: "other.cedar", Policy: []byte(minPolicy), LimitsName: "other.yaml", Limits: []byte(minLimits)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != s2.Version() {
		t.Errorf("Version depends on file names: %s != %s", s.Version(), s2.Version())
	}
	s3, err := Parse(Files{Policy: []byte(minPolicy + "\n"), Limits: []byte(minLimits)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() == s3.Version() {
		t.Error("Version does not change with the policy bytes")
	}
	// Moving a byte from one file to the other changes the version.
	s4, err := Parse(Files{Policy: []byte(minPolicy + "\n"), Limits: []byte(strings.TrimSuffix(minLimits, "\n"))})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Version() == s4.Version() {
		t.Error("Version is ambiguous across the two files")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		policy  string // "" keeps minPolicy
		limits  string // "" keeps minLimits
		file    string
		line    int
		reason  string // a part of the reason
		edits   [2]string
		inLimit bool
	}{
		// Cedar syntax.
		{name: "syntax error", policy: "// one\n\npermit (principal, action, resource) when { context.x ", file: "p.cedar", line: 3, reason: "syntax error"},
		{name: "missing semicolon", policy: "permit (principal, action, resource)\n\npermit (principal, action, resource);", file: "p.cedar", line: 3, reason: "syntax error"},
		// Schema.
		{name: "unknown context attribute", policy: minPolicy + "\n@id(\"x\")\npermit (principal, action == Action::\"match\", resource)\nwhen { context.legal == \"x\" };\n",
			file: "p.cedar", line: 6, reason: "attribute `legal` in context"},
		{name: "unknown action", policy: "permit (principal, action == Action::\"query\", resource);", file: "p.cedar", line: 1, reason: "unrecognized action"},
		{name: "unknown entity type", policy: "\npermit (principal == Officer::\"x\", action, resource);", file: "p.cedar", line: 2, reason: "does not match the schema"},
		{name: "type mismatch", policy: "permit (principal, action == Action::\"match\", resource) when { context.padded_size == \"big\" };", file: "p.cedar", line: 1, reason: "not compatible"},
		{name: "action on the wrong principal", policy: "permit (principal is Agency, action == Action::\"read_ledger\", resource);", file: "p.cedar", line: 1, reason: "applicable action"},
		{name: "unknown role", policy: "permit (principal in Role::\"auditr\", action, resource);", file: "p.cedar", line: 1, reason: `unknown role "auditr"`},
		{name: "unknown kind", policy: "permit (principal, action == Action::\"match\", resource)\nwhen { resource == Kind::\"fone\" };", file: "p.cedar", line: 1, reason: `unknown kind "fone"`},
		{name: "unknown node", policy: "permit (principal, action == Action::\"export\", resource == Node::\"remote\");", file: "p.cedar", line: 1, reason: `unknown node "remote"`},
		{name: "agency not in limits", policy: minPolicy + "permit (principal == Agency::\"US\", action == Action::\"sync\", resource);\n", file: "p.cedar", line: 5, reason: `agency "US" is not a partner`},
		{name: "reason on a permit", policy: "@reason(\"x\")\npermit (principal, action == Action::\"match\", resource);", file: "p.cedar", line: 1, reason: "@reason on a permit"},
		{name: "bad reason id", policy: "@reason(\"Bad Id\")\nforbid (principal, action == Action::\"match\", resource);", file: "p.cedar", line: 1, reason: "@reason"},
		{name: "duplicate id", policy: minPolicy + minPolicy, file: "p.cedar", line: 6, reason: "used twice"},
		{name: "unknown annotation", policy: "@owner(\"x\")\npermit (principal, action == Action::\"match\", resource);", file: "p.cedar", line: 1, reason: "unknown annotation @owner"},
		// Limits.
		{name: "negative value", edits: [2]string{"max_query: 100", "max_query: -5"}, file: "l.yaml", line: 8, reason: "out of range", inLimit: true},
		{name: "not a number", edits: [2]string{"daily_cap: 1000", "daily_cap: lots"}, file: "l.yaml", line: 5, reason: "not a whole number", inLimit: true},
		{name: "max_query over daily budget", edits: [2]string{"daily_budget: 500", "daily_budget: 50"}, file: "l.yaml", line: 8, reason: "over daily_budget", inLimit: true},
		{name: "bad handling code", edits: [2]string{"handling: H1", "handling: H4"}, file: "l.yaml", line: 8, reason: `handling code "H4"`, inLimit: true},
		{name: "bad disclosure", edits: [2]string{"disclosure: hits", "disclosure: records"}, file: "l.yaml", line: 8, reason: `disclosure "records"`, inLimit: true},
		{name: "unknown key", edits: [2]string{"cases:\n  budget: 200", "cases:\n  budget: 200\n  per_day: 5"}, file: "l.yaml", line: 11, reason: `unknown key "per_day"`, inLimit: true},
		{name: "unknown top-level key", edits: [2]string{"retention: 30d", "retention: 30d\nretain: 5d"}, file: "l.yaml", line: 4, reason: `unknown key "retain"`, inLimit: true},
		{name: "unknown kind", edits: [2]string{"  phone: {daily_cap", "  fone: {daily_cap"}, file: "l.yaml", line: 5, reason: `unknown kind "fone"`, inLimit: true},
		{name: "partner kind without global limits", edits: [2]string{"    phone: {max", "    email: {max"}, file: "l.yaml", line: 8, reason: "no global limits", inLimit: true},
		{name: "bad agency code", edits: [2]string{"  GB:", "  gb:"}, file: "l.yaml", line: 7, reason: "not an agency code", inLimit: true},
		{name: "duplicate partner", edits: [2]string{"cases:", "  GB: {}\ncases:"}, file: "l.yaml", line: 9, reason: `duplicate key "GB"`, inLimit: true},
		{name: "missing key", edits: [2]string{", handling: H1}", "}"}, file: "l.yaml", line: 8, reason: `missing key "handling"`, inLimit: true},
		{name: "offence twice", edits: [2]string{"[thb, forced_labour]", "[thb, thb]"}, file: "l.yaml", line: 2, reason: "listed twice", inLimit: true},
		{name: "bad retention", edits: [2]string{"retention: 30d", "retention: forever"}, file: "l.yaml", line: 3, reason: "retention", inLimit: true},
		{name: "bad version", edits: [2]string{"version: 1", "version: 2"}, file: "l.yaml", line: 1, reason: "not supported", inLimit: true},
		{name: "approval offence not listed", edits: [2]string{"cases:", "approval:\n  offences: [fraud]\ncases:"}, file: "l.yaml", line: 10, reason: `unknown offence "fraud"`, inLimit: true},
		{name: "reserve over 100", edits: [2]string{"cases:", "urgency: {reserve_percent: 150}\ncases:"}, file: "l.yaml", line: 9, reason: "out of range", inLimit: true},
		{name: "yaml syntax", edits: [2]string{"  budget: 200", "  budget: 200: 3"}, file: "l.yaml", line: 10, reason: "mapping values are not allowed", inLimit: true},
		{name: "alias", edits: [2]string{"cases:\n  budget: 200", "cases: &c\n  budget: 200\napproval: *c"}, file: "l.yaml", line: 11, reason: "aliases", inLimit: true},
		{name: "empty limits", limits: " ", file: "l.yaml", line: 1, reason: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, lim := tt.policy, tt.limits
			if pol == "" {
				pol = minPolicy
			}
			if lim == "" {
				lim = minLimits
			}
			if tt.inLimit {
				if !strings.Contains(lim, tt.edits[0]) {
					t.Fatalf("edit %q not found in the limits", tt.edits[0])
				}
				lim = strings.Replace(lim, tt.edits[0], tt.edits[1], 1)
			}
			_, err := Parse(Files{PolicyName: "p.cedar", Policy: []byte(pol), LimitsName: "l.yaml", Limits: []byte(lim)})
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse = %v; want a *FileError", err)
			}
			if fe.File != tt.file || fe.Line != tt.line || !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("Parse = %q; want %s:%d: ...%s...", err, tt.file, tt.line, tt.reason)
			}
			if fe.Reason == "" || strings.Contains(fe.Reason, "<input>") {
				t.Errorf("reason %q is empty or names <input>", fe.Reason)
			}
			if want := fe.File + ":"; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q; want it to start with %q", err, want)
			}
		})
	}
}

// TestSchemaEmbedded checks that Schema is the file beside the code, so the
// docs' copy and the validator agree.
func TestSchemaEmbedded(t *testing.T) {
	b, err := os.ReadFile("schema.cedarschema")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != Schema || validator() == nil {
		t.Error("Schema differs from schema.cedarschema")
	}
	for _, a := range actionNames {
		if !strings.Contains(Schema, `"`+a+`"`) {
			t.Errorf("action %s is not in the schema", a)
		}
	}
}

func TestParseRequest(t *testing.T) {
	good := `{"principal":{"agency":"TH"},"action":"match","kind":"phone","epoch":3,
"context":{"purpose":"p","legal_basis":"b","offence":"thb","case_ref":"C","padded_size":64,"urgent":true},
"time":"2026-11-27T12:00:00Z","used":{"partner/TH/phone/DAY":10},"approved":false}`
	r, err := ParseRequest([]byte(good))
	if err != nil {
		t.Fatalf("ParseRequest(good) = %v", err)
	}
	if r.Principal.Agency != "TH" || r.Context.PaddedSize != 64 || !r.Context.Urgent || r.Used["partner/TH/phone/DAY"] != 10 || r.Epoch != 3 || r.Time.Hour() != 12 {
		t.Errorf("ParseRequest(good) = %+v", r)
	}
	for _, bad := range []string{
		`{"principal":{"agency":"TH"},"action":"match","sise":5}`,
		`{"action":"match"} {}`,
		`{"action":`,
		`{"time":"yesterday"}`,
		`[]`,
	} {
		if _, err := ParseRequest([]byte(bad)); err == nil {
			t.Errorf("ParseRequest(%q) = nil error; want one", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	p, _ := os.ReadFile("../examples/policy/policy.cedar")
	l, _ := os.ReadFile("../examples/policy/limits.yaml")
	f.Add(string(p), string(l))
	f.Add(minPolicy, minLimits)
	f.Add("permit (principal, action, resource) when { context.x ", minLimits)
	f.Add(minPolicy, "kinds: &a [*a]")
	f.Add("@reason(\"\")forbid(principal,action,resource);", "version: 1\noffences: []")
	f.Fuzz(func(t *testing.T, pol, lim string) {
		s, err := Parse(Files{PolicyName: "p", Policy: []byte(pol), LimitsName: "l", Limits: []byte(lim)})
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Line < 1 || fe.Reason == "" {
				t.Fatalf("Parse error %v (%T) is not a *FileError with line and reason", err, err)
			}
			return
		}
		for _, r := range []Request{inbound("GB", "phone", 64), local("investigator", "TH", "email", 8), user("admin", "manage_keys")} {
			d := s.Decide(r)
			if d.Allow != (len(d.Reasons) == 0) {
				t.Fatalf("Decide: Allow %v with reasons %v", d.Allow, d.Reasons)
			}
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add(`{"principal":{"agency":"TH"},"action":"match","kind":"phone","context":{"padded_size":64},"time":"2026-11-27T12:00:00Z"}`)
	f.Add(`{"principal":{"user":"a","role":"admin"},"action":"manage_keys","used":{"x":-1}}`)
	f.Add(`{}`)
	s := examples(f)
	f.Fuzz(func(t *testing.T, b string) {
		r, err := ParseRequest([]byte(b))
		if err != nil {
			return
		}
		d := s.Decide(r)
		if d.Allow != (len(d.Reasons) == 0) || (!d.Allow && d.Reserve != nil) {
			t.Fatalf("Decide(%q) = %+v: inconsistent", b, d)
		}
	})
}

// TestActionIndex checks that deciding with the policies indexed by action
// gives what deciding with every policy gives, for scopes of each shape.
func TestActionIndex(t *testing.T) {
	pol := minPolicy + `
@id("any-action")
permit (principal in Role::"auditor", action, resource == Node::"local");
@id("set")
permit (principal in Role::"steward", action in [Action::"import", Action::"approve"], resource);
@id("in-one")
forbid (principal, action in Action::"approve", resource == Kind::"document");
@id("any-forbid")
@reason("night")
forbid (principal, action, resource) when { context.hour < 6 };
`
	s, err := Parse(Files{Policy: []byte(pol), Limits: []byte(minLimits)})
	if err != nil {
		t.Fatal(err)
	}
	full := *s
	full.byAction = map[string]policyList{}
	for _, a := range actionNames {
		full.byAction[a] = s.all
	}
	n := 0
	for _, role := range roleNames {
		for _, a := range actionNames {
			for _, kind := range []string{"phone", "document"} {
				for _, hour := range []int{3, 12} {
					r := local(role, "GB", kind, 64)
					r.Action = a
					r.Time = noon.Add(time.Duration(hour-12) * time.Hour)
					got, want := s.Decide(r), full.Decide(r)
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s %s %s at %d: indexed %+v; every policy %+v", role, a, kind, hour, got, want)
					}
					if got.Allow {
						n++
					}
				}
			}
		}
	}
	if n == 0 {
		t.Error("no request was allowed: the test compares only denials")
	}
	if got := len(s.byAction["read_ledger"]); got != 2 {
		t.Errorf("read_ledger has %d policies in the index; want 2 (any-action, any-forbid)", got)
	}
}

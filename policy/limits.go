package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// kindNames lists the identifier kinds, the resources of match, sync, import and
// approve, in the order the documentation gives them.
var kindNames = []string{"phone", "email", "btc", "eth", "iban", "address", "document"}

// roleNames lists the roles of local users.
// liaison (issue 23) answers partners' follow-ups of hits.
var roleNames = []string{"investigator", "approver", "auditor", "steward", "admin", "liaison"}

// actionNames lists every action a request may name.
var actionNames = []string{
	"match", "sync", "export", "read_ledger", "import", "approve",
	"manage_users", "manage_partners", "manage_keys", "manage_policy",
	"followup", "answer_followup", "read_followup",
}

// ReachNames lists the reaches of a responder's keys and sets (issue 22,
// docs/victims.md), in their canonical order: open holds the records of
// class suspect and unknown, victim and witness the records of those
// classes.
var ReachNames = []string{"open", "victim", "witness"}

// ModeNames lists the query modes. Enforcement asks the open reach only,
// whatever the limits file says; safeguarding asks what the partner's
// safeguarding rule lists.
var ModeNames = []string{"enforcement", "safeguarding"}

// Disclosure modes and handling codes the limits file may give.
var (
	disclosures   = []string{"hits"}
	handlingCodes = []string{"H0", "H1", "H2", "H3"}
)

var (
	agencyCode = regexp.MustCompile(`^[A-Z]{2}$`)
	snakeID    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// maxPadded is the largest padded set the limits file may allow in one query:
// the encoded sets of DESIGN.md are sized for at most 2^24 identifiers.
const maxPadded = 1 << 24

// limits is the parsed limits file.
type limits struct {
	offences  []string
	retention time.Duration
	reserve   int64 // percent of partner and case budgets only urgent queries may use
	kinds     map[string]kindLimits
	partners  map[string]map[string]partnerKind
	caseLimit int64
	approval  approvalRule
	followups map[string]followupRule // by partner; absent: the defaults
}

type kindLimits struct {
	dailyCap       int64 // padded identifiers per UTC day across all partners
	keyEvaluations int64 // evaluations per responder key, per (epoch, kind)
}

type partnerKind struct {
	maxQuery     int64
	dailyBudget  int64
	disclosure   string
	handling     string
	safeguarding *safeguardRule // nil: no safeguarding queries of this kind with this partner
}

// safeguardRule is what a partner's safeguarding queries of one kind may
// do: the reaches they ask, their own daily budget, the handling code of
// their answers and the instruction shown beside a victim or witness hit.
type safeguardRule struct {
	reaches     []string // in ReachNames order
	dailyBudget int64
	handling    string
	instruction string
}

// maxInstruction bounds the instruction text of a safeguarding rule.
const maxInstruction = 512

type approvalRule struct {
	sizeOver int64 // 0: size never asks for approval
	kinds    []string
	offences []string
}

// limitsParser walks the YAML node tree so that each error names its line.
type limitsParser struct {
	file string
}

func (p *limitsParser) errf(n *yaml.Node, format string, args ...any) error {
	line := 1
	if n != nil && n.Line > 0 {
		line = n.Line
	}
	return &FileError{File: p.file, Line: line, Reason: fmt.Sprintf(format, args...)}
}

// yamlLine extracts "line N" from a yaml.v3 syntax error.
var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

func parseLimits(file string, b []byte) (*limits, error) {
	p := &limitsParser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		line, reason := 1, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			reason = m[2]
		}
		return nil, &FileError{File: file, Line: max(line, 1), Reason: reason}
	}
	l := &limits{kinds: map[string]kindLimits{}, partners: map[string]map[string]partnerKind{}}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &FileError{File: file, Line: 1, Reason: "limits file is empty: it needs at least version, offences and kinds"}
	}
	root := doc.Content[0]
	fields, err := p.mapping(root, "the limits file", "version", "offences", "retention", "urgency", "kinds", "partners", "cases", "approval", "followups")
	if err != nil {
		return nil, err
	}
	for _, req := range []string{"version", "offences", "retention", "kinds", "partners"} {
		if fields[req] == nil {
			return nil, p.errf(root, "missing key %q", req)
		}
	}
	if v := fields["version"]; v.Value != "1" || v.Kind != yaml.ScalarNode {
		return nil, p.errf(v, "version %q is not supported: write version: 1", v.Value)
	}
	if l.offences, err = p.idList(fields["offences"], "offence", nil); err != nil {
		return nil, err
	}
	if len(l.offences) == 0 {
		return nil, p.errf(fields["offences"], "offences is empty: list the offence types queries may cite")
	}
	if l.retention, err = p.duration(fields["retention"]); err != nil {
		return nil, err
	}
	if n := fields["urgency"]; n != nil {
		u, err := p.mapping(n, "urgency", "reserve_percent")
		if err != nil {
			return nil, err
		}
		if u["reserve_percent"] != nil {
			if l.reserve, err = p.integer(u["reserve_percent"], 0, 100); err != nil {
				return nil, err
			}
		}
	}
	if err := p.kinds(fields["kinds"], l); err != nil {
		return nil, err
	}
	if err := p.partners(fields["partners"], l); err != nil {
		return nil, err
	}
	if n := fields["followups"]; n != nil {
		if err := p.followups(n, l); err != nil {
			return nil, err
		}
	}
	if n := fields["cases"]; n != nil {
		c, err := p.mapping(n, "cases", "budget")
		if err != nil {
			return nil, err
		}
		if c["budget"] == nil {
			return nil, p.errf(n, "missing key %q", "budget")
		}
		if l.caseLimit, err = p.integer(c["budget"], 1, 1<<40); err != nil {
			return nil, err
		}
	}
	if n := fields["approval"]; n != nil {
		a, err := p.mapping(n, "approval", "size_over", "kinds", "offences")
		if err != nil {
			return nil, err
		}
		if a["size_over"] != nil {
			if l.approval.sizeOver, err = p.integer(a["size_over"], 1, maxPadded); err != nil {
				return nil, err
			}
		}
		if a["kinds"] != nil {
			if l.approval.kinds, err = p.idList(a["kinds"], "kind", kindNames); err != nil {
				return nil, err
			}
		}
		if a["offences"] != nil {
			if l.approval.offences, err = p.idList(a["offences"], "offence", l.offences); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

func (p *limitsParser) kinds(n *yaml.Node, l *limits) error {
	m, order, err := p.anyMapping(n, "kinds")
	if err != nil {
		return err
	}
	for _, k := range order {
		key := m[k][0]
		if !slices.Contains(kindNames, k) {
			return p.errf(key, "unknown kind %q: kinds are %s", k, strings.Join(kindNames, ", "))
		}
		f, err := p.mapping(m[k][1], "kind "+k, "daily_cap", "key_evaluations")
		if err != nil {
			return err
		}
		for _, req := range []string{"daily_cap", "key_evaluations"} {
			if f[req] == nil {
				return p.errf(m[k][1], "kind %s: missing key %q", k, req)
			}
		}
		var kl kindLimits
		if kl.dailyCap, err = p.integer(f["daily_cap"], 1, 1<<40); err != nil {
			return err
		}
		if kl.keyEvaluations, err = p.integer(f["key_evaluations"], 1, 1<<40); err != nil {
			return err
		}
		l.kinds[k] = kl
	}
	return nil
}

func (p *limitsParser) partners(n *yaml.Node, l *limits) error {
	m, order, err := p.anyMapping(n, "partners")
	if err != nil {
		return err
	}
	for _, code := range order {
		key, val := m[code][0], m[code][1]
		if !agencyCode.MatchString(code) {
			return p.errf(key, "partner %q is not an agency code: write two upper-case letters (ISO 3166 alpha-2)", code)
		}
		km, korder, err := p.anyMapping(val, "partner "+code)
		if err != nil {
			return err
		}
		kinds := map[string]partnerKind{}
		for _, k := range korder {
			kkey, kval := km[k][0], km[k][1]
			if !slices.Contains(kindNames, k) {
				return p.errf(kkey, "partner %s: unknown kind %q: kinds are %s", code, k, strings.Join(kindNames, ", "))
			}
			kl, ok := l.kinds[k]
			if !ok {
				return p.errf(kkey, "partner %s: kind %s has no global limits: add it under kinds", code, k)
			}
			f, err := p.mapping(kval, "partner "+code+" kind "+k, "max_query", "daily_budget", "disclosure", "handling", "safeguarding")
			if err != nil {
				return err
			}
			for _, req := range []string{"max_query", "daily_budget", "disclosure", "handling"} {
				if f[req] == nil {
					return p.errf(kval, "partner %s kind %s: missing key %q", code, k, req)
				}
			}
			var pk partnerKind
			if pk.maxQuery, err = p.integer(f["max_query"], 1, maxPadded); err != nil {
				return err
			}
			if pk.dailyBudget, err = p.integer(f["daily_budget"], 1, 1<<40); err != nil {
				return err
			}
			if pk.maxQuery > pk.dailyBudget {
				return p.errf(f["max_query"], "partner %s kind %s: max_query %d is over daily_budget %d", code, k, pk.maxQuery, pk.dailyBudget)
			}
			if pk.maxQuery > kl.dailyCap {
				return p.errf(f["max_query"], "partner %s kind %s: max_query %d is over the daily_cap %d of kind %s", code, k, pk.maxQuery, kl.dailyCap, k)
			}
			if pk.disclosure, err = p.enum(f["disclosure"], "disclosure", disclosures); err != nil {
				return err
			}
			if pk.handling, err = p.enum(f["handling"], "handling code", handlingCodes); err != nil {
				return err
			}
			if n := f["safeguarding"]; n != nil {
				if pk.safeguarding, err = p.safeguarding(n, code, k); err != nil {
					return err
				}
			}
			kinds[k] = pk
		}
		l.partners[code] = kinds
	}
	return nil
}

// safeguarding reads a partner's safeguarding rule for one kind.
func (p *limitsParser) safeguarding(n *yaml.Node, code, kind string) (*safeguardRule, error) {
	what := "partner " + code + " kind " + kind + " safeguarding"
	f, err := p.mapping(n, what, "reaches", "daily_budget", "handling", "instruction")
	if err != nil {
		return nil, err
	}
	for _, req := range []string{"reaches", "daily_budget", "handling", "instruction"} {
		if f[req] == nil {
			return nil, p.errf(n, "%s: missing key %q", what, req)
		}
	}
	var r safeguardRule
	listed, err := p.idList(f["reaches"], "reach", ReachNames)
	if err != nil {
		return nil, err
	}
	if len(listed) == 0 {
		return nil, p.errf(f["reaches"], "%s: reaches is empty: list open, victim and witness, or leave safeguarding out", what)
	}
	for _, r2 := range ReachNames { // canonical order
		if slices.Contains(listed, r2) {
			r.reaches = append(r.reaches, r2)
		}
	}
	if r.dailyBudget, err = p.integer(f["daily_budget"], 1, 1<<40); err != nil {
		return nil, err
	}
	if r.handling, err = p.enum(f["handling"], "handling code", handlingCodes); err != nil {
		return nil, err
	}
	if r.instruction, err = p.scalar(f["instruction"], "instruction"); err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(r.instruction) == "":
		return nil, p.errf(f["instruction"], "%s: instruction is empty: say what the querier must do with a victim or witness hit", what)
	case len(r.instruction) > maxInstruction:
		return nil, p.errf(f["instruction"], "%s: instruction is %d bytes, at most %d", what, len(r.instruction), maxInstruction)
	case strings.IndexFunc(r.instruction, unicode.IsControl) >= 0:
		return nil, p.errf(f["instruction"], "%s: instruction holds control characters: write one line", what)
	}
	return &r, nil
}

// mapping checks that n is a mapping whose keys are all in allowed and
// returns the value node of each key present.
func (p *limitsParser) mapping(n *yaml.Node, what string, allowed ...string) (map[string]*yaml.Node, error) {
	m, _, err := p.anyMapping(n, what)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*yaml.Node, len(m))
	for k, kv := range m {
		if !slices.Contains(allowed, k) {
			return nil, p.errf(kv[0], "unknown key %q in %s: allowed keys are %s", k, what, strings.Join(allowed, ", "))
		}
		out[k] = kv[1]
	}
	return out, nil
}

// anyMapping returns the key and value nodes of a mapping by key, and the
// keys in file order. Duplicate keys are an error.
func (p *limitsParser) anyMapping(n *yaml.Node, what string) (map[string][2]*yaml.Node, []string, error) {
	if n.Kind == yaml.AliasNode {
		return nil, nil, p.errf(n, "%s: aliases are not allowed in a limits file", what)
	}
	if n.Kind != yaml.MappingNode {
		return nil, nil, p.errf(n, "%s must be a mapping of keys to values", what)
	}
	m := make(map[string][2]*yaml.Node, len(n.Content)/2)
	order := make([]string, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, nil, p.errf(k, "%s: keys must be plain strings", what)
		}
		if v.Kind == yaml.AliasNode {
			return nil, nil, p.errf(v, "%s: aliases are not allowed in a limits file", what)
		}
		if _, dup := m[k.Value]; dup {
			return nil, nil, p.errf(k, "duplicate key %q in %s", k.Value, what)
		}
		m[k.Value] = [2]*yaml.Node{k, v}
		order = append(order, k.Value)
	}
	return m, order, nil
}

func (p *limitsParser) scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", p.errf(n, "%s must be a single value", what)
	}
	return n.Value, nil
}

func (p *limitsParser) integer(n *yaml.Node, lo, hi int64) (int64, error) {
	s, err := p.scalar(n, "a number")
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return 0, p.errf(n, "%q is not a whole number", s)
	}
	if v < lo || v > hi {
		return 0, p.errf(n, "%d is out of range: want %d to %d", v, lo, hi)
	}
	return v, nil
}

func (p *limitsParser) enum(n *yaml.Node, what string, allowed []string) (string, error) {
	s, err := p.scalar(n, what)
	if err != nil {
		return "", err
	}
	if !slices.Contains(allowed, s) {
		return "", p.errf(n, "%s %q is not one of %s", what, s, strings.Join(allowed, ", "))
	}
	return s, nil
}

// idList reads a sequence of distinct identifiers; when allowed is not nil
// every element must be in it.
func (p *limitsParser) idList(n *yaml.Node, what string, allowed []string) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "%ss must be a list", what)
	}
	var out []string
	for _, e := range n.Content {
		s, err := p.scalar(e, what)
		if err != nil {
			return nil, err
		}
		if !snakeID.MatchString(s) {
			return nil, p.errf(e, "%s %q must be lower-case letters, digits and underscores", what, s)
		}
		if allowed != nil && !slices.Contains(allowed, s) {
			return nil, p.errf(e, "unknown %s %q: want one of %s", what, s, strings.Join(allowed, ", "))
		}
		if slices.Contains(out, s) {
			return nil, p.errf(e, "%s %q is listed twice", what, s)
		}
		out = append(out, s)
	}
	return out, nil
}

// duration reads a retention period: a whole number of days ("730d") or a Go
// duration ("72h").
func (p *limitsParser) duration(n *yaml.Node) (time.Duration, error) {
	s, err := p.scalar(n, "retention")
	if err != nil {
		return 0, err
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseInt(days, 10, 64)
		if err != nil || v <= 0 || v > 36500 {
			return 0, p.errf(n, "retention %q: want a whole number of days from 1 to 36500, such as 730d", s)
		}
		d = time.Duration(v) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, p.errf(n, "retention %q: want a positive period such as 730d or 72h", s)
		}
	}
	return d, nil
}

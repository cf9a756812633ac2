package policy

import (
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Schema is the Cedar schema, in Cedar's human-readable schema format, that
// every policy file is validated against at Parse. It is fixed by the node:
// its entity types, actions and context attributes are all a policy can see.
//
//go:embed schema.cedarschema
var Schema string

// Files holds the two files of a policy: the Cedar policies and the limits
// YAML. The names appear only in errors; the version depends on the bytes.
type Files struct {
	PolicyName string // shown in errors, e.g. "policy.cedar"
	Policy     []byte // Cedar policies; empty means no permit at all
	LimitsName string // shown in errors, e.g. "limits.yaml"
	Limits     []byte // limits YAML; see docs/policy.md
}

// FileError is the error Parse returns for any problem in either file. The
// node shows it to the operator as "file:line: reason".
type FileError struct {
	File   string // the file name given in Files
	Line   int    // line number, starting at 1
	Reason string // what is wrong, in a sentence without the file and line
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// Set is a parsed, validated policy: Cedar policies plus limits. A Set is
// immutable and safe for concurrent use.
type Set struct {
	version  string
	all      policyList                // every policy, in file order
	byAction map[string]policyList     // the policies whose action scope can match each action
	reasons  map[cedar.PolicyID]string // forbid policy ID -> its @reason
	messages map[cedar.PolicyID]string // forbid policy ID -> its @message
	limits   *limits
	// bootstrap: admins may use the admin verbs whatever Cedar says. Only
	// Default has it: once files are in force, Cedar decides.
	bootstrap bool
}

// Version identifies the files a decision was made with: "sha256:" and the
// 64 hex digits of SHA-256 over both files (each prefixed by its length as a
// big-endian uint64, under a domain label). It depends only on the bytes, not
// on the file names, so every replica that holds the same files agrees. It
// is "" for Default: no policy file.
func (s *Set) Version() string { return s.version }

// Retention is how long the ledger keeps the salted bodies of audit entries
// (actor, approver, purpose, legal basis, offence, case reference) before it
// may prune them. It is zero for Default: keep everything.
func (s *Set) Retention() time.Duration { return s.limits.retention }

// Partners returns the agency codes the limits file names, sorted.
func (s *Set) Partners() []string {
	out := make([]string, 0, len(s.limits.partners))
	for c := range s.limits.partners {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// PartnerKinds returns the identifier kinds the limits file lets partner
// exchange, in the order phone, email, btc, eth, iban, address, document:
// only these are synced to it. It is empty for an unknown partner.
func (s *Set) PartnerKinds(partner string) []string {
	var out []string
	for _, k := range kindNames {
		if _, ok := s.limits.partners[partner][k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// SyncReaches returns the reaches of kind whose sets partner is synced: open
// when the limits file lets it exchange kind at all, and the reaches of its
// safeguarding rule for kind; in ReachNames order. It is empty when kind is
// not exchanged with partner.
func (s *Set) SyncReaches(partner, kind string) []string {
	pk, ok := s.limits.partners[partner][kind]
	if !ok {
		return nil
	}
	out := []string{"open"}
	if pk.safeguarding != nil {
		for _, r := range pk.safeguarding.reaches {
			if r != "open" {
				out = append(out, r)
			}
		}
	}
	return out
}

// Safeguarding is a partner's safeguarding rule for one kind, as the limits
// file gives it.
type Safeguarding struct {
	Reaches     []string // in ReachNames order
	DailyBudget int64
	Handling    string // H0-H3
	Instruction string
}

// SafeguardingRule returns partner's safeguarding rule for kind; ok is
// false when safeguarding queries of kind are not in the agreement.
func (s *Set) SafeguardingRule(partner, kind string) (Safeguarding, bool) {
	pk, ok := s.limits.partners[partner][kind]
	if !ok || pk.safeguarding == nil {
		return Safeguarding{}, false
	}
	g := pk.safeguarding
	return Safeguarding{Reaches: slices.Clone(g.reaches), DailyBudget: g.dailyBudget, Handling: g.handling, Instruction: g.instruction}, true
}

// Offences returns the closed list of offence types a query may cite.
func (s *Set) Offences() []string { return slices.Clone(s.limits.offences) }

func version(f Files) string {
	h := sha256.New()
	h.Write([]byte("xborder/v1/policy\x00"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(f.Policy)))
	h.Write(n[:])
	h.Write(f.Policy)
	binary.BigEndian.PutUint64(n[:], uint64(len(f.Limits)))
	h.Write(n[:])
	h.Write(f.Limits)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// validator is the schema validator, built once from Schema.
var validator = sync.OnceValue(func() *validate.Validator {
	var s schema.Schema
	s.SetFilename("schema.cedarschema")
	if err := s.UnmarshalCedar([]byte(Schema)); err != nil {
		panic("policy: embedded schema does not parse: " + err.Error())
	}
	r, err := s.Resolve()
	if err != nil {
		panic("policy: embedded schema does not resolve: " + err.Error())
	}
	return validate.New(r, validate.WithStrict())
})

// Parse parses and validates both files. Every problem is a *FileError
// naming the file, line and reason: a Cedar syntax error; a policy that does
// not validate against Schema (unknown entity type, action, attribute, or
// type mismatch); a reference to an unknown role, kind or node, or to an
// agency the limits file does not list; a malformed @id or @reason; or a
// limits value that is missing, unknown or out of range.
func Parse(f Files) (*Set, error) {
	if f.PolicyName == "" {
		f.PolicyName = "policy.cedar"
	}
	if f.LimitsName == "" {
		f.LimitsName = "limits.yaml"
	}
	lim, err := parseLimits(f.LimitsName, f.Limits)
	if err != nil {
		return nil, err
	}
	s, err := parsePolicies(f.PolicyName, f.Policy, lim)
	if err != nil {
		return nil, err
	}
	s.version = version(f)
	return s, nil
}

// cedarPos finds "<input>:LINE:COL" in a cedar-go parse error.
var cedarPos = regexp.MustCompile(`<input>:(\d+):(\d+):? ?`)

// cedarExact rewrites cedar-go's "exact got X want Y" into a sentence.
var cedarExact = regexp.MustCompile(`exact got (.*) want (.*)$`)

func parsePolicies(file string, b []byte, lim *limits) (*Set, error) {
	list, err := cedar.NewPolicyListFromBytes(file, b)
	if err != nil {
		line, reason := 1, err.Error()
		if m := cedarPos.FindStringSubmatchIndex(reason); m != nil {
			line, _ = strconv.Atoi(reason[m[2]:m[3]])
			reason = reason[:m[0]] + reason[m[1]:]
		}
		line = max(line, 1)
		reason = strings.TrimPrefix(reason, "parser error: ")
		reason = strings.Replace(reason, "parse error at ", "syntax error near ", 1)
		reason = strings.Replace(reason, `syntax error near "":`, "syntax error at the end of the file:", 1)
		reason = cedarExact.ReplaceAllString(reason, "found $1 where $2 was expected")
		return nil, &FileError{File: file, Line: line, Reason: strings.TrimSpace(reason)}
	}
	var all policyList
	seen := map[cedar.PolicyID]bool{}
	s := &Set{
		reasons:  map[cedar.PolicyID]string{},
		messages: map[cedar.PolicyID]string{},
		limits:   lim,
	}
	v := validator()
	for i, p := range list {
		line := p.Position().Line
		ferr := func(format string, args ...any) error {
			return &FileError{File: file, Line: line, Reason: fmt.Sprintf(format, args...)}
		}
		id := cedar.PolicyID(fmt.Sprintf("policy%d", i))
		ann := p.Annotations()
		if a, ok := ann["id"]; ok {
			if !policyID.MatchString(string(a)) {
				return nil, ferr("@id(%q): write letters, digits, '-' and '_' only", a)
			}
			id = cedar.PolicyID(a)
		}
		if seen[id] {
			return nil, ferr("@id(%q) is used twice", id)
		}
		seen[id] = true
		for k := range ann {
			if !slices.Contains([]string{"id", "reason", "message"}, string(k)) {
				return nil, ferr("unknown annotation @%s: use @id, @reason or @message", k)
			}
		}
		if r, ok := ann["reason"]; ok {
			if p.Effect() != cedar.Forbid {
				return nil, ferr("@reason on a permit policy: only forbid policies deny, so only they carry a reason")
			}
			if !snakeID.MatchString(string(r)) {
				return nil, ferr("@reason(%q): write a lower-case id such as outside_agreement", r)
			}
			s.reasons[id] = string(r)
		}
		if m, ok := ann["message"]; ok {
			s.messages[id] = string(m)
		}
		pa := (*xast.Policy)(p.AST())
		if err := v.Policy("", pa); err != nil {
			return nil, ferr("does not match the schema: %s", oneLine(err))
		}
		if err := checkEntities(pa, lim); err != nil {
			return nil, ferr("%v", err)
		}
		all = append(all, policyEntry{id, p})
	}
	s.all = all
	s.byAction = make(map[string]policyList, len(actionNames))
	for _, a := range actionNames {
		uid := actionUIDs[a]
		var l policyList
		for _, e := range all {
			if actionMayMatch((*xast.Policy)(e.p.AST()).Action, uid) {
				l = append(l, e)
			}
		}
		s.byAction[a] = l
	}
	return s, nil
}

// policyList is a fixed list of policies for cedar.Authorize.
type policyList []policyEntry

type policyEntry struct {
	id cedar.PolicyID
	p  *cedar.Policy
}

func (l policyList) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, e := range l {
			if !yield(e.id, e.p) {
				return
			}
		}
	}
}

// actionMayMatch reports whether a policy's action scope can match action.
// The schema declares no action groups, so "in" is equality; a scope of any
// other shape is kept, so the index never drops a policy that applies.
func actionMayMatch(scope xast.IsActionScopeNode, action types.EntityUID) bool {
	switch sc := scope.(type) {
	case xast.ScopeTypeEq:
		return sc.Entity == action
	case xast.ScopeTypeIn:
		return sc.Entity == action
	case xast.ScopeTypeInSet:
		return slices.Contains(sc.Entities, action)
	}
	return true
}

var policyID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// checkEntities rejects references to entities the schema's enums or the
// limits file do not define: the schema validator checks entity types, not
// the IDs of Role, Kind and Node (cedar-go v1.9.1), nor the agency codes.
func checkEntities(p *xast.Policy, lim *limits) error {
	var errs []error
	check := func(uid types.EntityUID) {
		id := string(uid.ID)
		switch uid.Type {
		case "Role":
			if !slices.Contains(roleNames, id) {
				errs = append(errs, fmt.Errorf("unknown role %q: roles are %s", id, strings.Join(roleNames, ", ")))
			}
		case "Kind":
			if !slices.Contains(kindNames, id) {
				errs = append(errs, fmt.Errorf("unknown kind %q: kinds are %s", id, strings.Join(kindNames, ", ")))
			}
		case "Node":
			if id != "local" {
				errs = append(errs, fmt.Errorf("unknown node %q: the only node is Node::\"local\"", id))
			}
		case "Agency":
			if _, ok := lim.partners[id]; !ok {
				errs = append(errs, fmt.Errorf("agency %q is not a partner in the limits file: add it under partners", id))
			}
		}
	}
	scope := func(n any) {
		switch s := n.(type) {
		case xast.ScopeTypeEq:
			check(s.Entity)
		case xast.ScopeTypeIn:
			check(s.Entity)
		case xast.ScopeTypeIsIn:
			check(s.Entity)
		case xast.ScopeTypeInSet:
			for _, e := range s.Entities {
				check(e)
			}
		}
	}
	scope(p.Principal)
	scope(p.Action)
	scope(p.Resource)
	for _, c := range p.Conditions {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			if v, ok := n.(xast.NodeValue); ok {
				if uid, ok := v.Value.(types.EntityUID); ok {
					check(uid)
				}
			}
			return true
		})
	}
	return errors.Join(errs...)
}

// defaultPolicy is what a node decides with before any policy file is
// committed: no partner is listed, so partners get nothing; auditors may
// read the ledger; admins have the admin verbs by the bootstrap rule of
// Decide, which holds for Default only.
const defaultPolicy = `// xborder default policy: auditors may read the ledger, nothing else.
@id("default-auditors-read-ledger")
permit (principal in Role::"auditor", action == Action::"read_ledger", resource == Node::"local");
`

// Default returns the policy in force when no policy file has been
// committed: partners get nothing (no partner is listed), auditors may only
// read_ledger, and admins may use the admin verbs (the bootstrap rule, see
// Decide; once files are in force, Cedar decides them). Its
// version is the empty string, which is what the ledger holds as the
// version in force before any policy entry, so that decisions made with
// Default are admitted until the first policy is committed, and refused as
// stale after.
func Default() *Set { return defaultSet() }

var defaultSet = sync.OnceValue(func() *Set {
	s, err := parsePolicies("default.cedar", []byte(defaultPolicy), &limits{
		kinds:    map[string]kindLimits{},
		partners: map[string]map[string]partnerKind{},
	})
	if err != nil {
		panic("policy: default policy does not parse: " + err.Error())
	}
	s.bootstrap = true
	return s
})

package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Reason IDs. They are stable: the ledger records them and auditors filter
// by them. Forbid policies add their own with @reason.
const (
	ReasonBadRequest        = "bad_request"         // the request names no principal or both kinds, an unknown action, role or kind
	ReasonUnknownPartner    = "unknown_partner"     // the partner is not in the limits file
	ReasonKindNotAllowed    = "kind_not_allowed"    // the limits file gives the partner no limits for this kind
	ReasonBadSize           = "bad_size"            // a match with a padded size below 1
	ReasonSizeOverCap       = "size_over_cap"       // padded size over the partner's max_query for the kind
	ReasonMissingLegalBasis = "missing_legal_basis" // a match without a legal basis
	ReasonMissingCaseRef    = "missing_case_ref"    // a match without a case reference
	ReasonMissingPurpose    = "missing_purpose"     // a match without a purpose
	ReasonOffenceNotListed  = "offence_not_listed"  // offence type not in the limits file's list
	ReasonPartnerBudget     = "partner_budget"      // partner/CC/KIND/DAY would go over the daily budget
	ReasonCaseBudget        = "case_budget"         // the case (case/local/REF, case/partner/CC:REF) would go over its budget
	ReasonKindCap           = "kind_cap"            // kind/KIND/DAY would go over the global daily cap
	ReasonKeyExhausted      = "key_exhausted"       // key/EPOCH/KIND would go over the evaluations per key
	ReasonNeedsApproval     = "needs_approval"      // a local match that needs an approver and has none yet
	ReasonNotPermitted      = "not_permitted"       // no Cedar policy permits the request
	ReasonReachNotAllowed   = "reach_not_allowed"   // a match or sync asks a reach its mode may not ask of this partner and kind
	ReasonSafeguardBudget   = "safeguarding_budget" // safeguarding/CC/KIND/DAY would go over the safeguarding daily budget
)

// DayPlaceholder is the literal that budget keys carry in place of the UTC
// day; the ledger replaces it with the leader's day when it reserves.
const DayPlaceholder = "DAY"

// Principal is who asks: a partner agency (an inbound request from another
// node) or a local user. Exactly one of Agency and User is set.
type Principal struct {
	Agency string `json:"agency,omitempty"` // partner agency code, e.g. "TH", for an inbound request
	User   string `json:"user,omitempty"`   // local user name
	Role   string `json:"role,omitempty"`   // the local user's role: investigator, approver, auditor, steward or admin
}

// Context is what a request says about itself. Padded sizes count
// identifiers after padding, which is what budgets count.
type Context struct {
	Purpose    string `json:"purpose,omitempty"`
	LegalBasis string `json:"legal_basis,omitempty"`
	Offence    string `json:"offence,omitempty"` // one of the limits file's offences
	CaseRef    string `json:"case_ref,omitempty"`
	PaddedSize int    `json:"padded_size,omitempty"`
	Urgent     bool   `json:"urgent,omitempty"`
	// Mode is the query mode of a match: "enforcement" (also when empty)
	// or "safeguarding". A sync has no mode.
	Mode string `json:"mode,omitempty"`
	// Reaches are the reaches a match or sync asks (open, victim,
	// witness). Empty: a match asks every reach its mode may ask, a sync
	// the open reach.
	Reaches []string `json:"reaches,omitempty"`
}

// Request is one decision to make. Everything Decide needs is in it: Decide
// reads no clock and holds no state.
type Request struct {
	Principal Principal `json:"principal"`
	Action    string    `json:"action"`         // see docs/policy.md for the list
	Kind      string    `json:"kind,omitempty"` // phone, email, btc, eth, iban, address or document; for match, sync, import and approve
	// Partner is the agency a local user's match or sync goes to. For an
	// inbound request it is ignored: the principal is the partner.
	Partner  string           `json:"partner,omitempty"`
	Context  Context          `json:"context"`
	Time     time.Time        `json:"time"`           // the request's time, from the leader or the signed request
	Used     map[string]int64 `json:"used,omitempty"` // budget already used, by the keys of Reservation (DAY left as is)
	Approved bool             `json:"approved,omitempty"`
	Epoch    uint64           `json:"epoch,omitempty"` // the responder key epoch an inbound match is evaluated under
}

// Inbound reports whether the request comes from a partner agency.
func (r *Request) Inbound() bool { return r.Principal.Agency != "" }

// Reason says why a request is denied, by a stable ID and a sentence.
// Messages never repeat the request's free text (case reference, purpose,
// legal basis, offence, unknown names): they name only what the policy
// defines, agency codes, kinds and numbers.
type Reason struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// Reservation is budget the ledger must reserve, atomically with the admit
// entry, before the request may proceed: Used[Key] + Amount must stay at or
// under Limit.
type Reservation struct {
	Key    string `json:"key"`    // partner/CC/KIND/DAY, kind/KIND/DAY, case/local/REF, case/partner/CC:REF or key/EPOCH/KIND
	Amount int64  `json:"amount"` // padded identifiers
	Limit  int64  `json:"limit"`
}

// Decision is the outcome of Decide. Allow is true only when Reasons is
// empty; Reserve is set only when Allow is.
type Decision struct {
	Allow   bool          `json:"allow"`
	Reasons []Reason      `json:"reasons,omitempty"`
	Reserve []Reservation `json:"reserve,omitempty"`
	// NeedsApproval is true when a local match needs an approver by the
	// limits file's approval rules, whether or not it has one yet.
	NeedsApproval bool   `json:"needs_approval,omitempty"`
	Disclosure    string `json:"disclosure,omitempty"` // "hits" for match and sync with a known partner and kind
	Handling      string `json:"handling,omitempty"`   // H0-H3, for match and sync with a known partner and kind; a safeguarding match has its rule's
	// Mode is the match's mode, "enforcement" or "safeguarding"; empty
	// for other actions.
	Mode string `json:"mode,omitempty"`
	// Reaches are the reaches a match or sync goes to: those asked, or
	// when none were, every reach the mode may ask; in ReachNames order.
	Reaches []string `json:"reaches,omitempty"`
	// Instruction is the safeguarding rule's instruction for a
	// safeguarding match, shown beside a victim or witness hit.
	Instruction string `json:"instruction,omitempty"`
	Version     string `json:"version"`
}

var (
	kindActions  = []string{"match", "sync", "import", "approve", "followup", "answer_followup", "read_followup"}
	adminActions = []string{"manage_users", "manage_partners", "manage_keys", "manage_policy"}
)

// cedarUIDs are the entity UIDs of actions, kinds and roles, made once.
var (
	actionUIDs = uidMap("Action", actionNames)
	kindUIDs   = uidMap("Kind", kindNames)
	roleUIDs   = uidMap("Role", roleNames)
	roleSets   = func() map[string]types.EntityUIDSet {
		m := map[string]types.EntityUIDSet{}
		for r, uid := range roleUIDs {
			m[r] = types.NewEntityUIDSet(uid)
		}
		return m
	}()
	nodeUID = types.NewEntityUID("Node", "local")
)

func uidMap(typ types.EntityType, ids []string) map[string]types.EntityUID {
	m := make(map[string]types.EntityUID, len(ids))
	for _, id := range ids {
		m[id] = types.NewEntityUID(typ, types.String(id))
	}
	return m
}

// userEntity is the one entity Cedar needs to see: a user and its role.
type userEntity struct{ e types.Entity }

func (u userEntity) Get(uid types.EntityUID) (types.Entity, bool) {
	if uid == u.e.UID {
		return u.e, true
	}
	return types.Entity{}, false
}

// Decide decides r. It checks, and reports every failure of: the request's
// shape; the partner and kind against the limits file; for a match, the
// padded size, legal basis, case reference, purpose and offence; for a local
// match, the approval rules; the Cedar policies; and for a match, the
// budgets against r.Used. Under Default, before any policy file is in
// force, a user with role admin may use the admin verbs (bootstrap); once
// files are in force Cedar decides them like any other verb, so a forbid can
// restrict an admin. The node refuses to put in force files under which no
// user could manage_policy.
//
// Urgency never lifts a check: an urgent query needs its legal basis, case
// reference, size cap and approval like any other. It may use the reserve
// of the limits file (urgency.reserve_percent) on top of the partner's
// daily budget and the case budget, so routine traffic cannot exhaust what a
// pressing case needs; the global daily cap and the evaluations per key stay
// hard.
//
// Decide does no I/O, reads no clock and keeps no state; it is safe for
// concurrent use.
func (s *Set) Decide(r Request) Decision {
	d := Decision{Version: s.version}
	deny := func(id, format string, args ...any) {
		d.Reasons = append(d.Reasons, Reason{ID: id, Message: fmt.Sprintf(format, args...)})
	}
	inbound := r.Inbound()
	switch {
	case inbound && (r.Principal.User != "" || r.Principal.Role != ""):
		deny(ReasonBadRequest, "a principal is either an agency or a user, not both")
	case !inbound && r.Principal.User == "":
		deny(ReasonBadRequest, "the request names no principal: give an agency or a user")
	case !inbound && !slices.Contains(roleNames, r.Principal.Role):
		deny(ReasonBadRequest, "unknown role: roles are %s", strings.Join(roleNames, ", "))
	}
	if err := checkText(&r); err != "" {
		deny(ReasonBadRequest, "%s", err)
	}
	action, ok := actionUIDs[r.Action]
	if !ok {
		deny(ReasonBadRequest, "unknown action: actions are %s", strings.Join(actionNames, ", "))
	}
	onKind := slices.Contains(kindActions, r.Action)
	resource := nodeUID
	if onKind {
		k, ok := kindUIDs[r.Kind]
		if !ok {
			deny(ReasonBadRequest, "unknown kind: kinds are %s", strings.Join(kindNames, ", "))
		}
		resource = k
	}
	if d.Reasons != nil {
		return d
	}
	if s.bootstrap && !inbound && r.Principal.Role == "admin" && slices.Contains(adminActions, r.Action) {
		d.Allow = true
		return d
	}

	partner := r.Partner
	if inbound {
		partner = r.Principal.Agency
	}
	isMatch := r.Action == "match"
	var pk partnerKind
	var known bool
	if r.Action == "match" || r.Action == "sync" || r.Action == "followup" {
		kinds, ok := s.limits.partners[partner]
		switch {
		case !ok:
			deny(ReasonUnknownPartner, "the agency is not a partner in this policy")
		default:
			if pk, known = kinds[r.Kind]; known {
				d.Disclosure, d.Handling = pk.disclosure, pk.handling
			} else {
				deny(ReasonKindNotAllowed, "%s is not a kind this policy exchanges with %s", r.Kind, partner)
			}
		}
	}
	if isMatch || r.Action == "sync" {
		s.decideReaches(&r, partner, pk, known, &d, deny)
	}
	if r.Action == "followup" {
		decideFollowup(&r, partner, pk, known, &d, deny)
	}
	size := int64(r.Context.PaddedSize)
	if isMatch {
		if size < 1 {
			deny(ReasonBadSize, "padded size %d: a match has at least one identifier", size)
		} else if known && size > pk.maxQuery {
			deny(ReasonSizeOverCap, "padded size %d is over the cap of %d for %s %s", size, pk.maxQuery, partner, r.Kind)
		}
		if r.Context.LegalBasis == "" {
			deny(ReasonMissingLegalBasis, "a match needs a legal basis")
		}
		if r.Context.CaseRef == "" {
			deny(ReasonMissingCaseRef, "a match needs a case reference")
		}
		if r.Context.Purpose == "" {
			deny(ReasonMissingPurpose, "a match needs a purpose")
		}
		if !slices.Contains(s.limits.offences, r.Context.Offence) {
			deny(ReasonOffenceNotListed, "the offence type is not one of this policy's: %s", strings.Join(s.limits.offences, ", "))
		}
		if !inbound {
			a := s.limits.approval
			// A safeguarding query always waits for an approver, so that
			// the mode is not a way around the rule of enforcement.
			d.NeedsApproval = (a.sizeOver > 0 && size > a.sizeOver) ||
				slices.Contains(a.kinds, r.Kind) || slices.Contains(a.offences, r.Context.Offence) ||
				d.Mode == "safeguarding"
			if d.NeedsApproval && !r.Approved {
				deny(ReasonNeedsApproval, "this query needs an approver's sign-off before it is sent")
			}
		}
	}

	// Cedar sees the mode and reaches decided: a match that asks no
	// reach asks every reach its mode may ask.
	if d.Mode != "" {
		r.Context.Mode = d.Mode
	}
	if d.Reaches != nil {
		r.Context.Reaches = d.Reaches
	}
	s.cedarDecide(&r, partner, action, resource, deny)

	if isMatch && size > 0 {
		res := s.reservations(&r, partner, known, pk, size, d.Reaches)
		for _, x := range res {
			// Written so that no sum can overflow: a huge used amount denies.
			switch used := r.Used[x.key.Key]; {
			case used < 0:
				deny(ReasonBadRequest, "%s: the used amount %d is negative", x.what, used)
			case used > x.key.Limit-x.key.Amount:
				deny(x.reason, "%s: %d used and %d asked is over the limit of %d", x.what, used, x.key.Amount, x.key.Limit)
			}
		}
		if d.Reasons == nil {
			d.Reserve = make([]Reservation, len(res))
			for i, x := range res {
				d.Reserve[i] = x.key
			}
		}
	}
	d.Allow = d.Reasons == nil
	return d
}

// Bounds on the free text of a request: it reaches the ledger.
const (
	maxCaseRef = 128
	maxText    = 1024
)

// caseEscaper makes a case reference one segment of a budget key, so that
// "/" in a reference never makes a segment the ledger reads as DAY.
var caseEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// checkText bounds the free-text fields and returns what is wrong, or "".
func checkText(r *Request) string {
	c := &r.Context
	switch {
	case len(c.CaseRef) > maxCaseRef:
		return fmt.Sprintf("the case reference is longer than %d bytes", maxCaseRef)
	case strings.IndexFunc(c.CaseRef, unicode.IsControl) >= 0 || !utf8.ValidString(c.CaseRef):
		return "the case reference holds control characters or invalid UTF-8"
	case !r.Inbound() && c.CaseRef == DayPlaceholder:
		return "this case reference is reserved: budget keys use it for the UTC day"
	case len(c.Purpose) > maxText || len(c.LegalBasis) > maxText || len(c.Offence) > maxText:
		return fmt.Sprintf("purpose, legal basis and offence are limited to %d bytes each", maxText)
	}
	return ""
}

type reservation struct {
	key    Reservation
	reason string
	what   string
}

// reservations lists the budgets a match draws on. Inbound: the partner's
// daily budget, the global daily cap, the case (case/partner/CC:REF: the
// partner's code and its reference, so references of different agencies
// never meet) and the evaluations of the responder key. Local: the case
// (case/local/REF). The second segment keeps local and inbound cases apart
// whatever the reference, and the escaped reference is one segment, never
// DAY (a local DAY is refused; an inbound one follows "CC:").
func (s *Set) reservations(r *Request, partner string, known bool, pk partnerKind, size int64, reaches []string) []reservation {
	lim := s.limits
	withReserve := func(n int64) int64 {
		if r.Context.Urgent {
			return n + n*lim.reserve/100
		}
		return n
	}
	var out []reservation
	safeguarding := r.Context.Mode == "safeguarding"
	if r.Inbound() && known && safeguarding && pk.safeguarding != nil {
		// Safeguarding queries draw on their own daily budget, not the
		// partner's enforcement budget.
		out = append(out, reservation{
			key:    Reservation{Key: "safeguarding/" + partner + "/" + r.Kind + "/" + DayPlaceholder, Amount: size, Limit: withReserve(pk.safeguarding.dailyBudget)},
			reason: ReasonSafeguardBudget, what: "safeguarding daily budget",
		})
	} else if r.Inbound() && known {
		out = append(out, reservation{
			key:    Reservation{Key: "partner/" + partner + "/" + r.Kind + "/" + DayPlaceholder, Amount: size, Limit: withReserve(pk.dailyBudget)},
			reason: ReasonPartnerBudget, what: "partner daily budget",
		})
		kl := lim.kinds[r.Kind]
		out = append(out, reservation{
			key:    Reservation{Key: "kind/" + r.Kind + "/" + DayPlaceholder, Amount: size, Limit: kl.dailyCap},
			reason: ReasonKindCap, what: "global daily cap",
		})
	}
	if lim.caseLimit > 0 && r.Context.CaseRef != "" {
		key := "case/local/" + caseEscaper.Replace(r.Context.CaseRef)
		if r.Inbound() {
			key = "case/partner/" + partner + ":" + caseEscaper.Replace(r.Context.CaseRef)
		}
		out = append(out, reservation{
			key:    Reservation{Key: key, Amount: size, Limit: withReserve(lim.caseLimit)},
			reason: ReasonCaseBudget, what: "case budget",
		})
	}
	if r.Inbound() && known {
		// One evaluation per reach key: each key has its own cap. The open
		// key keeps the key/EPOCH/KIND budget of the keys before reaches.
		for _, reach := range reaches {
			key := "key/" + strconv.FormatUint(r.Epoch, 10) + "/" + r.Kind
			if reach != "open" {
				key += "/" + reach
			}
			out = append(out, reservation{
				key:    Reservation{Key: key, Amount: size, Limit: lim.kinds[r.Kind].keyEvaluations},
				reason: ReasonKeyExhausted, what: "evaluations of this epoch's " + reach + " key",
			})
		}
	}
	return out
}

// decideReaches checks the mode and the reaches of a match or sync and
// fills in d.Mode, d.Reaches and, for safeguarding, the rule's handling
// code and instruction. Enforcement asks the open reach only: the limits
// file cannot widen it (docs/victims.md); safeguarding asks the reaches of
// the partner's safeguarding rule for the kind, and is not allowed where
// there is none. A sync of a reach is allowed when some mode may ask it.
func (s *Set) decideReaches(r *Request, partner string, pk partnerKind, known bool, d *Decision, deny func(string, string, ...any)) {
	asked := r.Context.Reaches
	for i, reach := range asked {
		if !slices.Contains(ReachNames, reach) {
			deny(ReasonBadRequest, "unknown reach: reaches are %s", strings.Join(ReachNames, ", "))
			return
		}
		if slices.Contains(asked[:i], reach) {
			deny(ReasonBadRequest, "the reach %s is asked twice", reach)
			return
		}
	}
	var allowed []string
	if r.Action == "sync" {
		if r.Context.Mode != "" {
			deny(ReasonBadRequest, "a sync has no mode")
			return
		}
		if len(asked) == 0 {
			asked = []string{"open"}
		}
		allowed = []string{"open"}
		if known && pk.safeguarding != nil {
			allowed = pk.safeguarding.reaches
			if !slices.Contains(allowed, "open") {
				allowed = append([]string{"open"}, allowed...)
			}
		}
	} else {
		d.Mode = r.Context.Mode
		if d.Mode == "" {
			d.Mode = "enforcement"
		}
		switch {
		case !slices.Contains(ModeNames, d.Mode):
			d.Mode = ""
			deny(ReasonBadRequest, "unknown mode: modes are %s", strings.Join(ModeNames, ", "))
			return
		case d.Mode == "enforcement":
			allowed = []string{"open"}
		case !known:
			return // unknown partner or kind: denied already
		case pk.safeguarding == nil:
			deny(ReasonReachNotAllowed, "safeguarding queries of %s are not in this policy's agreement with %s", r.Kind, partner)
			return
		default:
			allowed = pk.safeguarding.reaches
			d.Handling, d.Instruction = pk.safeguarding.handling, pk.safeguarding.instruction
		}
		if len(asked) == 0 {
			asked = allowed
		}
	}
	for _, reach := range asked {
		if !slices.Contains(allowed, reach) {
			if d.Mode != "" {
				deny(ReasonReachNotAllowed, "the %s reach is not open to %s in %s mode for %s", reach, partner, d.Mode, r.Kind)
			} else {
				deny(ReasonReachNotAllowed, "the %s set of %s is not synced to %s: no safeguarding rule reaches it", reach, r.Kind, partner)
			}
		}
	}
	for _, reach := range ReachNames {
		if slices.Contains(asked, reach) {
			d.Reaches = append(d.Reaches, reach)
		}
	}
}

// cedarDecide asks the Cedar policies and adds the reasons of a denial: the
// @reason of each forbid policy that applies, or not_permitted when no
// permit applies.
func (s *Set) cedarDecide(r *Request, partner string, action, resource types.EntityUID, deny func(string, string, ...any)) {
	var principal types.EntityUID
	var entities types.EntityGetter
	if r.Inbound() {
		principal = types.NewEntityUID("Agency", types.String(r.Principal.Agency))
		entities = types.EntityMap{}
	} else {
		principal = types.NewEntityUID("User", types.String(r.Principal.User))
		entities = userEntity{types.Entity{UID: principal, Parents: roleSets[r.Principal.Role]}}
	}
	direction := "local"
	if r.Inbound() {
		direction = "inbound"
	}
	t := r.Time.UTC()
	mode := r.Context.Mode
	reaches := make([]types.Value, 0, len(r.Context.Reaches))
	for _, reach := range r.Context.Reaches {
		reaches = append(reaches, types.String(reach))
	}
	ctx := types.NewRecord(types.RecordMap{
		"direction":   types.String(direction),
		"partner":     types.String(partner),
		"purpose":     types.String(r.Context.Purpose),
		"legal_basis": types.String(r.Context.LegalBasis),
		"offence":     types.String(r.Context.Offence),
		"case_ref":    types.String(r.Context.CaseRef),
		"padded_size": types.Long(r.Context.PaddedSize),
		"urgent":      types.Boolean(r.Context.Urgent),
		"approved":    types.Boolean(r.Approved),
		"time":        types.NewDatetime(t),
		"hour":        types.Long(t.Hour()),
		"weekday":     types.Long(t.Weekday()),
		"mode":        types.String(mode),
		"reaches":     types.NewSet(reaches...),
	})
	dec, diag := cedar.Authorize(s.byAction[r.Action], entities, cedar.Request{
		Principal: principal, Action: action, Resource: resource, Context: ctx,
	})
	if dec == cedar.Allow {
		return
	}
	named := false
	slices.SortFunc(diag.Reasons, func(a, b types.DiagnosticReason) int { return strings.Compare(string(a.PolicyID), string(b.PolicyID)) })
	for _, dr := range diag.Reasons {
		if id, ok := s.reasons[dr.PolicyID]; ok {
			msg := s.messages[dr.PolicyID]
			if msg == "" {
				msg = "denied by policy " + string(dr.PolicyID)
			}
			deny(id, "%s", msg)
			named = true
		}
	}
	if !named {
		deny(ReasonNotPermitted, "no policy permits %s to %s", principalLabel(r), r.Action)
	}
}

func principalLabel(r *Request) string {
	if r.Inbound() {
		return "agency " + r.Principal.Agency
	}
	return "role " + r.Principal.Role
}

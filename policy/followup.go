package policy

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults of a partner's follow-up rule (issue 23, docs/followup.md): the
// answer times of the Swedish Initiative (Framework Decision 2006/960/JHA,
// art. 4) and a 30-day window.
const (
	DefaultFollowupWindow   = 30 * 24 * time.Hour
	DefaultFollowupDeadline = 7 * 24 * time.Hour
	DefaultUrgentDeadline   = 8 * time.Hour
)

// maxFollowupPeriod bounds the window and deadlines of the limits file.
const maxFollowupPeriod = 366 * 24 * time.Hour

// Followup is a partner's follow-up rule, as the limits file gives it
// under followups.CC, with the defaults filled in.
type Followup struct {
	// Window is how long after a match request a follow-up of its hits
	// is accepted (the owner's side) and how long the querier keeps the
	// tags of its hits (the querier's side). Default 30 days.
	Window time.Duration
	// Deadline and UrgentDeadline are when the owner's answer is due after
	// it accepts a standard or urgent follow-up. Defaults 7 days and 8
	// hours.
	Deadline       time.Duration
	UrgentDeadline time.Duration
	// AutoAnswer lists the kinds whose follow-ups from this partner the
	// owner's node answers on its own (sharing reference and contact
	// under each record's handling code) when no liaison decision is
	// required. A follow-up that names a victim or witness hit, or any
	// record without a reference or contact, always goes to the liaison.
	AutoAnswer []string
}

// DeadlineFor returns the answer's due time for a follow-up accepted at
// t.
func (f Followup) DeadlineFor(t time.Time, urgent bool) time.Time {
	if urgent {
		return t.Add(f.UrgentDeadline)
	}
	return t.Add(f.Deadline)
}

// AutoAnswers reports whether follow-ups of kind may be answered without
// the liaison (see AutoAnswer).
func (f Followup) AutoAnswers(kind string) bool { return slices.Contains(f.AutoAnswer, kind) }

// followupRule is the parsed followups.CC mapping.
type followupRule struct {
	window, deadline, urgent time.Duration // 0: the default
	autoAnswer               []string
}

// Followup returns partner's follow-up rule with the defaults filled in.
// An unknown partner gets the defaults (its follow-ups are refused
// anyway: Decide says unknown_partner).
func (s *Set) Followup(partner string) Followup {
	f := Followup{Window: DefaultFollowupWindow, Deadline: DefaultFollowupDeadline, UrgentDeadline: DefaultUrgentDeadline}
	r, ok := s.limits.followups[partner]
	if !ok {
		return f
	}
	if r.window > 0 {
		f.Window = r.window
	}
	if r.deadline > 0 {
		f.Deadline = r.deadline
	}
	if r.urgent > 0 {
		f.UrgentDeadline = r.urgent
	}
	f.AutoAnswer = slices.Clone(r.autoAnswer)
	return f
}

// followups reads the followups mapping: per partner of the partners
// mapping, its follow-up rule.
func (p *limitsParser) followups(n *yaml.Node, l *limits) error {
	m, order, err := p.anyMapping(n, "followups")
	if err != nil {
		return err
	}
	l.followups = make(map[string]followupRule, len(order))
	for _, code := range order {
		kinds, ok := l.partners[code]
		if !ok {
			return p.errf(m[code][0], "followups: %q is not a partner: add it under partners first", code)
		}
		r, err := p.followup(m[code][1], code, kinds)
		if err != nil {
			return err
		}
		l.followups[code] = r
	}
	return nil
}

// followup reads followups.CC: window, deadline, urgent_deadline (each a
// whole number of days such as 30d, or a Go duration such as 168h) and
// auto_answer (kinds the partner exchanges).
func (p *limitsParser) followup(n *yaml.Node, code string, kinds map[string]partnerKind) (followupRule, error) {
	what := "followups " + code
	f, err := p.mapping(n, what, "window", "deadline", "urgent_deadline", "auto_answer")
	if err != nil {
		return followupRule{}, err
	}
	var r followupRule
	for _, d := range []struct {
		key string
		v   *time.Duration
	}{{"window", &r.window}, {"deadline", &r.deadline}, {"urgent_deadline", &r.urgent}} {
		if f[d.key] == nil {
			continue
		}
		if *d.v, err = p.period(f[d.key], what+" "+d.key); err != nil {
			return followupRule{}, err
		}
	}
	if r.urgent > 0 && r.deadline > 0 && r.urgent > r.deadline {
		return followupRule{}, p.errf(f["urgent_deadline"], "%s: urgent_deadline %s is later than deadline %s", what, r.urgent, r.deadline)
	}
	if n := f["auto_answer"]; n != nil {
		if r.autoAnswer, err = p.idList(n, "kind", kindNames); err != nil {
			return followupRule{}, err
		}
		for i, k := range r.autoAnswer {
			if _, ok := kinds[k]; !ok {
				return followupRule{}, p.errf(n.Content[i], "%s: auto_answer names %s, a kind this policy does not exchange with %s", what, k, code)
			}
		}
	}
	return r, nil
}

// period reads a positive period of at most a year: a whole number of days
// ("30d") or a Go duration ("8h").
func (p *limitsParser) period(n *yaml.Node, what string) (time.Duration, error) {
	s, err := p.scalar(n, what)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseInt(days, 10, 64)
		if err != nil || v <= 0 || v > 366 {
			return 0, p.errf(n, "%s %q: want a whole number of days from 1 to 366, such as 30d", what, s)
		}
		d = time.Duration(v) * 24 * time.Hour
	} else if d, err = time.ParseDuration(s); err != nil || d <= 0 || d > maxFollowupPeriod {
		return 0, p.errf(n, "%s %q: want a positive period of at most a year, such as 30d or 8h", what, s)
	}
	return d, nil
}

// decideFollowup checks a follow-up (action followup): a legal basis and
// a purpose, a known mode (that of the match request followed up), and
// hits of the open reach only in enforcement mode. The partner and kind
// were checked against the limits file as for a match; Cedar decides the
// rest with the mode and reaches in its context.
func decideFollowup(r *Request, partner string, pk partnerKind, known bool, d *Decision, deny func(string, string, ...any)) {
	if r.Context.LegalBasis == "" {
		deny(ReasonMissingLegalBasis, "a follow-up needs a legal basis")
	}
	if r.Context.Purpose == "" {
		deny(ReasonMissingPurpose, "a follow-up needs a purpose")
	}
	d.Mode = r.Context.Mode
	if d.Mode == "" {
		d.Mode = "enforcement"
	}
	if !slices.Contains(ModeNames, d.Mode) {
		d.Mode = ""
		deny(ReasonBadRequest, "unknown mode: modes are %s", strings.Join(ModeNames, ", "))
		return
	}
	for i, reach := range r.Context.Reaches {
		switch {
		case !slices.Contains(ReachNames, reach):
			deny(ReasonBadRequest, "unknown reach: reaches are %s", strings.Join(ReachNames, ", "))
			return
		case slices.Contains(r.Context.Reaches[:i], reach):
			deny(ReasonBadRequest, "the reach %s is named twice", reach)
			return
		case reach != "open" && d.Mode != "safeguarding":
			deny(ReasonReachNotAllowed, "a %s hit is followed up in safeguarding mode only", reach)
			return
		case reach != "open" && known && (pk.safeguarding == nil || !slices.Contains(pk.safeguarding.reaches, reach)):
			deny(ReasonReachNotAllowed, "the %s reach is not open to %s in safeguarding mode for %s", reach, partner, r.Kind)
			return
		}
	}
	for _, reach := range ReachNames {
		if slices.Contains(r.Context.Reaches, reach) {
			d.Reaches = append(d.Reaches, reach)
		}
	}
	if known && d.Mode == "safeguarding" && pk.safeguarding != nil {
		d.Handling = pk.safeguarding.handling
	}
}

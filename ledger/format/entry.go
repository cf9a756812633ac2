package format

import (
	"encoding/hex"
	"fmt"
)

// EntryVersion is the version of the leaf layout written now. It is the
// first byte of every leaf. Version 2 adds the query mode and the reaches
// evaluated (issue 22) after the fields of version 1; version 3 adds the
// follow-up ID (issue 23) after those. A decoder still reads version 1 and
// 2 leaves, whose later fields are empty.
const EntryVersion = 3

// EntryVersion1 is the first leaf layout, without mode and reaches.
const EntryVersion1 = 1

// EntryVersion2 is the leaf layout with mode and reaches, without the
// follow-up ID.
const EntryVersion2 = 2

// MaxField is the longest string field of a header or body, in bytes.
const MaxField = 1024

// Type is the closed set of entry types. Its text form (match_out, …) is
// what exports and filters use.
type Type uint8

// Entry types. The numbers are part of the leaf layout: never renumber.
const (
	TypeMatchOut    Type = 1  // an outbound match query was sent
	TypeMatchResult Type = 2  // the result of an outbound query (hit count, query-set commitment)
	TypeMatchIn     Type = 3  // an inbound match query was admitted (Admit)
	TypeDenial      Type = 4  // a request was refused; Outcome says why
	TypeSync        Type = 5  // an encoded set was synced to or from a partner
	TypeImport      Type = 6  // holdings were imported
	TypeRemove      Type = 7  // holdings were removed
	TypeEpoch       Type = 8  // an OPRF epoch started or retired (digest of the signed epoch keys)
	TypePolicy      Type = 9  // a policy version came into force (digest of the policy files)
	TypeLedgerRead  Type = 10 // an auditor read the ledger
	TypeExport      Type = 11 // the ledger was exported
	TypePrune       Type = 12 // bodies older than the retention were pruned
	TypePartner     Type = 13 // a partner was pinned, updated or removed
	TypeUser        Type = 14 // a local user was added, changed or removed
	TypeReplica     Type = 15 // a replica joined or left
	TypeApproval    Type = 16 // a query that needs an approver was recorded pending, approved, or run
	TypeWitness     Type = 17 // this node's witness refused a partner's checkpoint that contradicts one it cosigned, or a witness contradicted this ledger
	// Step 2, the follow-up after a hit (docs/followup.md). The owner
	// records followup_in and followup_answer, the querier followup_out
	// and followup_result, all under the same follow-up ID.
	TypeFollowupIn     Type = 18 // a partner's follow-up of hits of a match request this agency answered was accepted
	TypeFollowupOut    Type = 19 // this agency followed up hits at a partner
	TypeFollowupResult Type = 20 // the partner's signed answer to a follow-up arrived
	TypeFollowupAnswer Type = 21 // this agency answered a partner's follow-up (shared or refused)
)

var typeNames = [...]string{
	TypeMatchOut: "match_out", TypeMatchResult: "match_result", TypeMatchIn: "match_in",
	TypeDenial: "denial", TypeSync: "sync", TypeImport: "import", TypeRemove: "remove",
	TypeEpoch: "epoch", TypePolicy: "policy", TypeLedgerRead: "ledger_read", TypeExport: "export",
	TypePrune: "prune", TypePartner: "partner", TypeUser: "user", TypeReplica: "replica",
	TypeApproval: "approval", TypeWitness: "witness_alarm",
	TypeFollowupIn: "followup_in", TypeFollowupOut: "followup_out", TypeFollowupResult: "followup_result",
	TypeFollowupAnswer: "followup_answer",
}

// Valid reports whether t is one of the defined types.
func (t Type) Valid() bool { return t > 0 && int(t) < len(typeNames) }

// String returns the text form of t, or "type(N)" for an undefined type.
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler.
func (t Type) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("marshal entry type %d: undefined", uint8(t))
	}
	return []byte(typeNames[t]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	*t = v
	return err
}

// ParseType returns the type whose text form is s.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if n != "" && n == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("parse entry type %q: unknown", s)
}

// Outcome is the closed set of entry outcomes.
type Outcome uint8

// Outcomes. The numbers are part of the leaf layout: never renumber.
const (
	OutcomeNone              Outcome = 0 // the type has no outcome
	OutcomeOK                Outcome = 1 // done or admitted
	OutcomeDenied            Outcome = 2 // refused by policy
	OutcomeDeniedBudget      Outcome = 3 // refused by Admit: a budget would be exceeded
	OutcomeDeniedReplay      Outcome = 4 // refused by Admit: request ID already seen
	OutcomeDeniedStalePolicy Outcome = 5 // refused by Admit: decided on a policy version not in force
	OutcomeFailed            Outcome = 6 // attempted and failed (partner unreachable, proof invalid)
	OutcomeStale             Outcome = 7 // answered "stale" (the partner's set was out of date)
)

var outcomeNames = [...]string{
	OutcomeNone: "none", OutcomeOK: "ok", OutcomeDenied: "denied", OutcomeDeniedBudget: "denied_budget",
	OutcomeDeniedReplay: "denied_replay", OutcomeDeniedStalePolicy: "denied_stale_policy",
	OutcomeFailed: "failed", OutcomeStale: "stale",
}

// Valid reports whether o is one of the defined outcomes.
func (o Outcome) Valid() bool { return int(o) < len(outcomeNames) }

// String returns the text form of o.
func (o Outcome) String() string {
	if o.Valid() {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// MarshalText implements encoding.TextMarshaler.
func (o Outcome) MarshalText() ([]byte, error) {
	if !o.Valid() {
		return nil, fmt.Errorf("marshal outcome %d: undefined", uint8(o))
	}
	return []byte(outcomeNames[o]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Outcome) UnmarshalText(b []byte) error {
	for i, n := range outcomeNames {
		if n == string(b) {
			*o = Outcome(i)
			return nil
		}
	}
	return fmt.Errorf("parse outcome %q: unknown", b)
}

// Digest is a 32-byte hash; its text form is lower-case hex.
type Digest [32]byte

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("parse digest: %d hex digits, want 64", len(b))
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("parse digest: %w", err)
	}
	return nil
}

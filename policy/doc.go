// Package policy decides who may ask what of an xborder node, how much, and
// on what legal basis, before any cryptography runs.
//
// A policy is two files. The first holds Cedar policies
// (https://www.cedarpolicy.com), validated at Parse against the fixed
// [Schema]: principals are partner agencies (Agency::"TH", by agency code)
// and local users (User::"alice" in Role::"investigator"); actions are
// match, sync, export, read_ledger, import, approve and the admin verbs
// manage_users, manage_partners, manage_keys and manage_policy; resources
// are identifier kinds (Kind::"phone") or the node itself (Node::"local");
// the context carries purpose, legal basis, offence type, case reference,
// padded size, urgency, approval and time. The second is a limits YAML file:
// the closed list of offence types, per partner and kind the largest padded
// set, the daily budget, the disclosure mode and the handling code H0-H3;
// per kind a global daily cap and the most evaluations per responder key
// per (epoch, kind) (RFC 9497 section 7.2.3); a budget per case; the
// approval rules for local queries; the urgency reserve; the ledger's
// retention; and per partner and kind an optional safeguarding rule: the
// reaches (open, victim, witness) its safeguarding queries may ask, their
// own daily budget, handling code and instruction. Enforcement queries ask
// the open reach only, whatever the files say (docs/victims.md).
// docs/policy.md is the reference of both files.
//
// [Parse] turns the bytes of both files into a [Set] or a [*FileError]
// with file, line and reason. [Set.Decide] takes a [Request] (who, what,
// which kind, context, time, budgets already used) and returns a
// [Decision]: allow or deny with every reason by a stable ID, the budget
// reservations the ledger must make atomically with its admit entry (keys
// partner/CC/KIND/DAY or, for safeguarding, safeguarding/CC/KIND/DAY,
// kind/KIND/DAY, case/local/REF, case/partner/CC:REF and key/EPOCH/KIND
// (key/EPOCH/KIND/REACH for the victim and witness keys), with the
// literal DAY that the ledger replaces by the leader's UTC day), whether an
// approver is needed, the disclosure mode, the handling code and the
// version of the files, and for a match its mode and the reaches it goes
// to. Decide does no I/O, reads no clock and keeps no
// state; [Default] is the policy before any file is committed.
//
// # Security
//
// The policy is what stops a partner from enumerating a phone-number range
// through PSI: every inbound match is checked against the partner's kind,
// size cap, daily budget, the global cap and the evaluations left on the
// responder key, and every local match against the case budget and the
// approval rules. Budgets count padded identifiers, so padding cannot be
// used to hide volume. Decide only reports what to reserve: the reservation
// is enforced by the ledger, which holds the used amounts as replicated
// state, so a restart or a single replica cannot reset them.
//
// Safe defaults: a partner absent from the limits file gets nothing; with
// no policy file ([Default]) auditors may only read the ledger and the admin
// verbs are open to users with role admin (bootstrap; the node decides who
// holds that role). Once files are in force Cedar decides the admin verbs
// too; the node refuses files under which no user could manage_policy.
// The schema validator is cedar-go's experimental x/exp/schema/validate
// (pinned at v1.9.1); Parse adds the checks it lacks (the IDs of roles,
// kinds and the node, and agency codes against the limits file).
//
// Reason messages never repeat the request's free text (case reference,
// purpose, legal basis, unlisted offence, unknown names); they name only
// what the policy defines, agency codes, kinds and numbers, so they are
// safe to log.
package policy

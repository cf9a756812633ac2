package ledger

import (
	"crypto/ed25519"

	"github.com/xborder/xborder/ledger/format"
)

// The entry schema, the checkpoint and the export files are defined by
// package format, which an auditor's verifier uses alone; these names keep
// them in reach of the ledger's callers.

// EntryVersion is the version of the leaf layout this package writes. It is
// the first byte of every leaf (docs/ledger-format.md).
const EntryVersion = format.EntryVersion

// MaxField is the longest string field of a header or body, in bytes.
const MaxField = format.MaxField

type (
	// Type is the closed set of entry types (format.Type).
	Type = format.Type
	// Outcome is the closed set of entry outcomes (format.Outcome).
	Outcome = format.Outcome
	// Digest is a 32-byte hash; its text form is lower-case hex.
	Digest = format.Digest
	// Header is the canonical, always-kept part of an entry: the leaf is
	// its encoding (format.Header). Index, Time and BodyHash are set by the
	// ledger; the caller fills in the rest (zero values are allowed).
	Header = format.Header
	// Body is the prunable part of an entry (format.Body).
	Body = format.Body
	// Checkpoint is a signed C2SP tlog-checkpoint of the ledger.
	Checkpoint = format.Checkpoint
)

// Entry types (format.Type).
const (
	TypeMatchOut       = format.TypeMatchOut
	TypeMatchResult    = format.TypeMatchResult
	TypeMatchIn        = format.TypeMatchIn
	TypeDenial         = format.TypeDenial
	TypeSync           = format.TypeSync
	TypeImport         = format.TypeImport
	TypeRemove         = format.TypeRemove
	TypeEpoch          = format.TypeEpoch
	TypePolicy         = format.TypePolicy
	TypeLedgerRead     = format.TypeLedgerRead
	TypeExport         = format.TypeExport
	TypePrune          = format.TypePrune
	TypePartner        = format.TypePartner
	TypeUser           = format.TypeUser
	TypeReplica        = format.TypeReplica
	TypeApproval       = format.TypeApproval
	TypeWitness        = format.TypeWitness
	TypeFollowupIn     = format.TypeFollowupIn
	TypeFollowupOut    = format.TypeFollowupOut
	TypeFollowupResult = format.TypeFollowupResult
	TypeFollowupAnswer = format.TypeFollowupAnswer
)

// Outcomes (format.Outcome).
const (
	OutcomeNone              = format.OutcomeNone
	OutcomeOK                = format.OutcomeOK
	OutcomeDenied            = format.OutcomeDenied
	OutcomeDeniedBudget      = format.OutcomeDeniedBudget
	OutcomeDeniedReplay      = format.OutcomeDeniedReplay
	OutcomeDeniedStalePolicy = format.OutcomeDeniedStalePolicy
	OutcomeFailed            = format.OutcomeFailed
	OutcomeStale             = format.OutcomeStale
)

// Export file names inside an export directory (format.Verify checks one).
const (
	ExportCheckpoint = format.ExportCheckpoint
	ExportPublicKey  = format.ExportPublicKey
	ExportEntries    = format.ExportEntries
)

// ParseType returns the type whose text form is s.
func ParseType(s string) (Type, error) { return format.ParseType(s) }

// EncodeLeaf returns the leaf bytes of h (format.EncodeLeaf).
func EncodeLeaf(h *Header) []byte { return format.EncodeLeaf(h) }

// DecodeLeaf parses leaf bytes written by EncodeLeaf (format.DecodeLeaf).
func DecodeLeaf(b []byte) (Header, error) { return format.DecodeLeaf(b) }

// BodyHash returns the value of Header.BodyHash for a salt and body
// (format.BodyHash).
func BodyHash(salt Digest, b Body) Digest { return format.BodyHash(salt, b) }

// Origin returns the checkpoint origin for an agency code (format.Origin).
func Origin(agency string) string { return format.Origin(agency) }

// VerifierKey returns the signed-note verifier key (name+hash+base64) of an
// agency public key, named by the ledger origin (format.VerifierKey).
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	return format.VerifierKey(origin, pub)
}

// ParseCheckpoint checks the signature of a signed checkpoint note with the
// verifier key and parses it (format.ParseCheckpoint).
func ParseCheckpoint(signed []byte, verifierKey string) (Checkpoint, error) {
	return format.ParseCheckpoint(signed, verifierKey)
}

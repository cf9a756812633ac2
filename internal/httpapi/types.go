package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// Errors a Backend wraps (with %w, beside the cause) to choose the HTTP
// status; StatusOf maps them, and the ledger's own sentinels, in one place.
// The Client returns an *Error that unwraps to the same sentinel.
var (
	// ErrBadRequest: the request is malformed or names something invalid
	// (400). Fix the input.
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized: no token, or a token no user holds (401). Check
	// --token-file.
	ErrUnauthorized = errors.New("not authenticated")
	// ErrForbidden: the policy in force does not let the user's role do
	// this (403). Ask an admin.
	ErrForbidden = errors.New("denied by policy")
	// ErrNotFound: no such user, partner or entry (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request clashes with the state (409), e.g. a user
	// name that exists or a card that is not newer than the pinned one.
	ErrConflict = errors.New("conflict")
	// ErrTooMany: too many failed authentications from this address
	// (429). Wait for the Retry-After seconds.
	ErrTooMany = errors.New("too many failed authentications")
	// ErrUnavailable: the node cannot serve now (503): no quorum, not
	// caught up, shutting down. Retry later; the message says why.
	ErrUnavailable = errors.New("node unavailable")
)

// User is a local user as the API shows it. The token is never shown but
// once, by AddUser.
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created,omitzero"`
}

// NewUser is the answer to adding a user: the token, shown only here.
type NewUser struct {
	User
	Token string `json:"token"`
}

// Card is the agency's own signed card.
type Card struct {
	Card        string `json:"card"`        // the text form (JSON) of the signed card
	Fingerprint string `json:"fingerprint"` // to read out to partners
}

// Partner is a pinned partner agency.
type Partner struct {
	Agency      string    `json:"agency"`
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	Sequence    uint64    `json:"sequence"`
	Expires     time.Time `json:"expires"`
	Replicas    []string  `json:"replicas"` // peer IDs
	Replaced    bool      `json:"replaced,omitempty"`
	// Witness is the verifier key of the partner's witness (C2SP
	// cosignature/v1), from its card; empty for a card without one.
	Witness string `json:"witness_key,omitempty"`
}

// AddPartner is the body of a pin request.
type AddPartner struct {
	Card        string `json:"card"`                  // text form of the partner's card
	Fingerprint string `json:"fingerprint,omitempty"` // checked out of band; empty: not checked
}

// PolicyFiles is the body of a policy apply request.
type PolicyFiles struct {
	PolicyName string `json:"policy_name"`
	Policy     string `json:"policy"`
	LimitsName string `json:"limits_name"`
	Limits     string `json:"limits"`
}

// PolicyVersion names the policy in force.
type PolicyVersion struct {
	Version string `json:"version"`
}

// Group is one Raft group's state on this replica.
type Group struct {
	Name    string `json:"name"` // audit or data
	State   string `json:"state"`
	Leader  string `json:"leader"`
	Quorum  bool   `json:"quorum"`
	Healthy bool   `json:"healthy"`
	Applied uint64 `json:"applied"`
	Commit  uint64 `json:"commit"`
	Size    uint64 `json:"size"`
	Error   string `json:"error,omitempty"`
}

// Status is the replica's view of itself.
type Status struct {
	Agency   string  `json:"agency"`
	Replica  string  `json:"replica"`
	PeerID   string  `json:"peer_id"`
	Policy   string  `json:"policy"`
	Groups   []Group `json:"groups"`
	Partners int     `json:"connected_partners"`
	// Witness is what witnessing shows: alarms, and how far partners
	// cosigned this ledger.
	Witness *WitnessStatus `json:"witness,omitempty"`
}

// WitnessStatus is the witnessing part of a replica's status.
type WitnessStatus struct {
	Alarms       int    `json:"alarms"`               // split views recorded (witness_alarm entries), 0 when all is well
	LastAlarm    string `json:"last_alarm,omitempty"` // what one of them says
	CosignedSize uint64 `json:"cosigned_size"`        // size of this ledger's newest cosigned checkpoint
	Cosignatures int    `json:"cosignatures"`         // partners' cosignatures on it that verify
	Witnesses    int    `json:"witnesses"`            // pinned partners whose card has a witness key
}

// EntryProof is one entry with its inclusion proof.
type EntryProof struct {
	Entry ledger.Entry `json:"entry"`
	Leaf  []byte       `json:"leaf"`  // base64 of the exact leaf bytes
	Size  uint64       `json:"size"`  // tree size the proof is for
	Root  string       `json:"root"`  // base64 root hash of that tree
	Proof []string     `json:"proof"` // base64 hashes, RFC 6962 inclusion proof
}

// Export is a ledger export: the three files of an export directory.
type Export struct {
	Checkpoint string `json:"checkpoint"` // signed note
	PublicKey  string `json:"public_key"` // note verifier key line
	Entries    string `json:"entries"`    // entries.jsonl
}

// Published is the ledger's newest signed checkpoint and the newest one its
// partners' witnesses cosigned (docs/witness.md).
type Published struct {
	Checkpoint string `json:"checkpoint"`         // signed note
	Cosigned   string `json:"cosigned,omitempty"` // signed note with the partners' cosignature lines; absent before any
}

// PruneRequest asks to prune bodies older than Before.
type PruneRequest struct {
	Before time.Time `json:"before"`
}

// PruneResult says what a prune did.
type PruneResult struct {
	Index   uint64 `json:"index"`   // ledger index of the prune entry
	Deleted uint64 `json:"deleted"` // bodies, request IDs and outcomes deleted
}

// Replica is one member of the agency's Raft groups.
type Replica struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`     // replica transport address
	Suffrage string `json:"suffrage"` // Voter, Nonvoter or Staging
	Leader   bool   `json:"leader"`   // leader of the audit group
}

// AddReplica asks for the join bundle of a new replica.
type AddReplica struct {
	ID    string   `json:"id"`              // the new replica's ID
	Hosts []string `json:"hosts,omitempty"` // names or addresses for its certificate
}

// Backend is what the API needs of a node. Every method that changes or
// reads audited state takes the acting user, whom it records.
type Backend interface {
	// Authenticate returns the user holding token, or ErrUnauthorized.
	Authenticate(token string) (User, error)
	// Authorize returns nil when the policy in force lets u do action
	// (one of policy.Actions), or an error wrapping ErrForbidden.
	Authorize(u User, action string) error
	Status() Status
	// Ready returns nil when both groups have quorum and this replica is
	// caught up, else an error wrapping ErrUnavailable that says why.
	Ready() error

	AddUser(ctx context.Context, actor User, name, role string) (NewUser, error)
	Users(ctx context.Context) ([]User, error)
	RemoveUser(ctx context.Context, actor User, name string) error

	Card(ctx context.Context) (Card, error)
	AddPartner(ctx context.Context, actor User, req AddPartner) (Partner, error)
	Partners(ctx context.Context) ([]Partner, error)
	RemovePartner(ctx context.Context, actor User, agency string) error

	// AddReplica returns the join bundle (a JSON document holding
	// secrets) of a new replica.
	AddReplica(ctx context.Context, actor User, req AddReplica) (json.RawMessage, error)
	Replicas(ctx context.Context) ([]Replica, error)
	RemoveReplica(ctx context.Context, actor User, id string) error

	ApplyPolicy(ctx context.Context, actor User, f policy.Files) (string, error)
	PolicyVersion() string

	Entries(ctx context.Context, actor User, purpose string, f ledger.Filter) ([]ledger.Entry, error)
	Entry(ctx context.Context, actor User, purpose string, index uint64) (EntryProof, error)
	// Checkpoint returns the newest signed checkpoint and the newest
	// cosigned one.
	Checkpoint(ctx context.Context) (Published, error)
	Export(ctx context.Context, actor User) (Export, error)
	Prune(ctx context.Context, actor User, before time.Time) (PruneResult, error)
}

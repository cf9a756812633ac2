package httpapi

import "time"

// SyncState is a replica's copy of one partner's set of one kind and
// reach: the epoch and version held, its entries, and when it was last
// synced. The web console's status page shows them.
type SyncState struct {
	Partner string    `json:"partner"`
	Kind    string    `json:"kind"`
	Reach   string    `json:"reach"`
	Epoch   uint64    `json:"epoch"`
	Version uint32    `json:"version"`
	Entries int       `json:"entries"`           // padded entries of the copy (0: none held)
	Synced  time.Time `json:"synced,omitzero"`   // zero: never synced since the replica started
	Syncing bool      `json:"syncing,omitempty"` // a sync of this copy runs now: the other fields may be about to change
	Refused string    `json:"refused,omitempty"` // the owner's last refusal reason, while the replica waits before asking again
}

// Budget is one budget the policy in force sets, with the amount used
// today (UTC) as the replica's ledger holds it. Budgets count padded
// identifiers. The web console's policy page plots them.
type Budget struct {
	// Scope says whose budget it is: "partner" (a partner's daily budget
	// for a kind: its queries to this agency), "safeguarding" (the same
	// for its safeguarding queries), "kind" (the daily cap of a kind
	// across all partners) or "case" (a local case's budget).
	Scope   string `json:"scope"`
	Partner string `json:"partner,omitempty"` // partner and safeguarding
	Kind    string `json:"kind,omitempty"`    // partner, safeguarding and kind
	Case    string `json:"case,omitempty"`    // case
	Used    uint64 `json:"used"`
	Limit   int64  `json:"limit"`             // without the urgent reserve
	Reserve int64  `json:"reserve,omitempty"` // percent of Limit urgent queries may use on top (partner, safeguarding, case)
}

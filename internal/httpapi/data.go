package httpapi

import (
	"context"
	"net/http"
	"net/url"
)

// DataBackend is what the holdings routes need: a Backend that also
// implements it gets /v1/data/... and /v1/keys/rotate. The policy decides
// each call with the kind concerned (import), or manage_keys (rotate).
type DataBackend interface {
	// BeginImport opens an import of kind; its rows then arrive in batches.
	BeginImport(ctx context.Context, u User, req BeginImport) (Import, error)
	// ImportRows canonicalises and stores one batch of rows of an import.
	ImportRows(ctx context.Context, u User, id string, rows []Row) (ImportRowsResult, error)
	// CommitImport makes an import's rows part of the holdings (the next
	// set version) and records one audit entry with its counts.
	CommitImport(ctx context.Context, u User, id string, c CommitImport) (ImportResult, error)
	// RemoveRows erases rows of a kind from the holdings; matching stops at
	// the next epoch.
	RemoveRows(ctx context.Context, u User, req RemoveRows) (RemoveResult, error)
	// CompactData makes every replica erase from its disk what removals
	// left there (docs/holdings.md, "Removal and erasure"), waits until
	// they have or the wait ends, and records one audit entry.
	CompactData(ctx context.Context, u User) (CompactResult, error)
	// DataStats describes the holdings and their encoded sets.
	DataStats(ctx context.Context, u User) (DataStats, error)
	// RotateKeys commits a new OPRF epoch.
	RotateKeys(ctx context.Context, u User) (Rotation, error)
}

// Row is one input row of an import or removal: its line in the file, the
// identifier as written, and the agency's own record reference (optional).
type Row struct {
	Line  int    `json:"line"`
	Value string `json:"value"`
	Ref   string `json:"ref,omitempty"`
	// Class is the subject class of the record: suspect, victim, witness
	// or unknown; empty: the import's class (BeginImport.Class).
	Class string `json:"class,omitempty"`
	// Contact is a contact point for the record (a desk, an officer's
	// function), shown to the liaison and shared in a follow-up's answer;
	// at most 256 bytes, optional. Import only.
	Contact string `json:"contact,omitempty"`
	// Handling is the record's handling code, H0 to H3; empty: the
	// import's (BeginImport.Handling). Import only.
	Handling string `json:"handling,omitempty"`
}

// InvalidRow is a row that was not stored, and why.
type InvalidRow struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// BeginImport starts an import.
type BeginImport struct {
	Kind     string `json:"kind"`
	Region   string `json:"region,omitempty"`   // default region for national forms
	Handling string `json:"handling,omitempty"` // H0-H3; empty: H0
	// Strict refuses, as invalid rows, the values accepted only with a
	// warning (ident.Options.Strict: phone numbers possible but not valid).
	Strict bool `json:"strict,omitempty"`
	// Class is the subject class of the rows that give none: suspect,
	// victim, witness or unknown; empty: unknown (docs/victims.md).
	Class string `json:"class,omitempty"`
}

// Import names an open import.
type Import struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// ImportRowsResult is the outcome of one batch.
type ImportRowsResult struct {
	Stored     int          `json:"stored"`
	Duplicates int          `json:"duplicates"`
	Invalid    []InvalidRow `json:"invalid,omitempty"`
	// Warnings are rows stored but probably wrong (ident.Check), and why.
	Warnings []InvalidRow `json:"warnings,omitempty"`
}

// CommitImport ends an import; Invalid counts rows the client refused
// itself (unparseable lines) for the audit entry.
type CommitImport struct {
	Invalid int `json:"invalid,omitempty"`
}

// ImportResult is the outcome of a whole import.
type ImportResult struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Imported   int    `json:"imported"`
	Duplicates int    `json:"duplicates"`
	Invalid    int    `json:"invalid"`
	Warnings   int    `json:"warnings,omitempty"` // rows stored with a warning
	Epoch      uint64 `json:"epoch"`
	Version    int    `json:"version"` // set version the rows enter
}

// RemoveRows asks to remove identifiers of a kind.
type RemoveRows struct {
	Kind   string `json:"kind"`
	Region string `json:"region,omitempty"`
	Rows   []Row  `json:"rows"`
}

// CompactResult is the outcome of a compaction: the replicas of the data
// group that have compacted their disk for it and those that have not yet
// (down, or slower than the wait); a pending replica compacts when it
// can, and `data compact` run again waits anew.
type CompactResult struct {
	Request   string   `json:"request"` // the erasure request's ID
	Compacted []string `json:"compacted"`
	Pending   []string `json:"pending"`
	Index     uint64   `json:"index"` // the audit entry that records it
}

// RemoveResult is the outcome of a removal.
type RemoveResult struct {
	Removed int          `json:"removed"`
	NotHeld int          `json:"not_held"`
	Invalid []InvalidRow `json:"invalid,omitempty"`
}

// KindStats describes the holdings of one kind.
type KindStats struct {
	Kind     string `json:"kind"`
	Rows     int    `json:"rows"`
	Epoch    uint64 `json:"epoch"`
	Versions int    `json:"versions"` // set versions committed in the epoch
	Built    int    `json:"built"`    // set versions this replica has built
	Entries  int    `json:"entries"`  // padded entries of the built set
	Digest   string `json:"digest,omitempty"`
	// Full: the set is at psi's largest size (14,680,064 identifiers):
	// the versions after Built are not in it.
	Full bool `json:"full,omitempty"`
	// Warnings counts the identifiers held that ident.Check warns of
	// (phone numbers possible but not valid).
	Warnings int `json:"warnings,omitempty"`
	// Classes counts Rows per subject class (suspect, victim, witness,
	// unknown); a class with no row is left out.
	Classes map[string]int `json:"classes,omitempty"`
}

// SetStats describes the encoded set of one kind in one live epoch as the
// replica that answers holds it. Every replica that serves it holds the
// same bytes, so Version and Digest agree across the agency's replicas.
type SetStats struct {
	Kind    string `json:"kind"`
	Epoch   uint64 `json:"epoch"`
	Reach   string `json:"reach"`            // open, victim or witness: each reach has its own set and key
	Version int    `json:"version"`          // newest version whose digest is on the ledger (0: none yet)
	Base    int    `json:"base,omitempty"`   // the base version served up to Version
	Digest  string `json:"digest,omitempty"` // SHA-256 (hex) of the segment of Version, as the ledger records it
	// Serving is false while this replica cannot serve the set (not built
	// yet, or its bytes differ from the ledger's until a newer base).
	Serving bool `json:"serving"`
}

// DataStats describes the holdings.
type DataStats struct {
	Epoch     uint64      `json:"epoch"`
	NextEpoch uint64      `json:"next_epoch,omitempty"` // the epoch being prepared, if any
	Kinds     []KindStats `json:"kinds"`
	Sets      []SetStats  `json:"sets"` // per kind held and live epoch, by kind then epoch
}

// Rotation is the outcome of a key rotation.
type Rotation struct {
	Epoch     uint64 `json:"epoch"`      // the epoch still answering
	NextEpoch uint64 `json:"next_epoch"` // the epoch being prepared
}

func (s *Server) dataRoutes() {
	b, ok := s.cfg.Backend.(DataBackend)
	if !ok {
		return
	}
	s.auth("POST /v1/data/imports", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req BeginImport
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.BeginImport(ctx, u, req)
	})
	s.auth("POST /v1/data/imports/{id}/rows", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var rows []Row
		if err := readJSON(r, &rows); err != nil {
			return nil, err
		}
		return b.ImportRows(ctx, u, r.PathValue("id"), rows)
	})
	s.auth("POST /v1/data/imports/{id}/commit", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req CommitImport
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.CommitImport(ctx, u, r.PathValue("id"), req)
	})
	s.auth("POST /v1/data/remove", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req RemoveRows
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.RemoveRows(ctx, u, req)
	})
	s.auth("POST /v1/data/compact", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.CompactData(ctx, u)
	})
	s.auth("GET /v1/data/stats", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.DataStats(ctx, u)
	})
	s.auth("POST /v1/keys/rotate", "manage_keys", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.RotateKeys(ctx, u)
	})
}

// BeginImport opens an import.
func (c *Client) BeginImport(ctx context.Context, req BeginImport) (Import, error) {
	var out Import
	return out, c.do(ctx, http.MethodPost, "/v1/data/imports", req, &out)
}

// ImportRows sends one batch of an import.
func (c *Client) ImportRows(ctx context.Context, id string, rows []Row) (ImportRowsResult, error) {
	var out ImportRowsResult
	return out, c.do(ctx, http.MethodPost, "/v1/data/imports/"+url.PathEscape(id)+"/rows", rows, &out)
}

// CommitImport ends an import.
func (c *Client) CommitImport(ctx context.Context, id string, req CommitImport) (ImportResult, error) {
	var out ImportResult
	return out, c.do(ctx, http.MethodPost, "/v1/data/imports/"+url.PathEscape(id)+"/commit", req, &out)
}

// CompactData asks every replica to erase what removals left on disk.
func (c *Client) CompactData(ctx context.Context) (CompactResult, error) {
	var out CompactResult
	return out, c.do(ctx, http.MethodPost, "/v1/data/compact", nil, &out)
}

// RemoveRows removes identifiers.
func (c *Client) RemoveRows(ctx context.Context, req RemoveRows) (RemoveResult, error) {
	var out RemoveResult
	return out, c.do(ctx, http.MethodPost, "/v1/data/remove", req, &out)
}

// DataStats describes the holdings.
func (c *Client) DataStats(ctx context.Context) (DataStats, error) {
	var out DataStats
	return out, c.do(ctx, http.MethodGet, "/v1/data/stats", nil, &out)
}

// RotateKeys commits a new epoch.
func (c *Client) RotateKeys(ctx context.Context) (Rotation, error) {
	var out Rotation
	return out, c.do(ctx, http.MethodPost, "/v1/keys/rotate", nil, &out)
}

package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/xborder/xborder/internal/console"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// The web console (internal/console, docs/console.md) is served by every
// replica under /ui/ on its API listener. It is a client of the backend,
// the same one the API calls, so that its queries, approvals and ledger
// reads go through the node's users, policy and ledger.
var (
	_ console.Backend = (*backend)(nil)
	_ console.Refuser = (*backend)(nil) // refuse.go
)

// EntryProof returns ledger entry index with its inclusion proof in the
// tree of size entries (0: the current size), the read recorded first (no
// audit, no answer). The console asks for the size of the checkpoint it
// verified, so that the proof leads to that checkpoint's root.
func (b *backend) EntryProof(ctx context.Context, actor httpapi.User, purpose string, index, size uint64) (httpapi.EntryProof, error) {
	cur, _, err := b.audit.TreeHead()
	switch {
	case err != nil:
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: %w", index, err)
	case size > cur:
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: a tree of %d entries, the ledger has %d: %w", index, size, cur, httpapi.ErrNotFound)
	case size == 0 && index >= cur:
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: the ledger has %d entries: %w", index, cur, httpapi.ErrNotFound)
	case size > 0 && index >= size:
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: the tree of %d entries does not hold it: %w", index, size, httpapi.ErrNotFound)
	}
	if _, _, err := b.audit.Read(ctx, actorName(actor), purpose, ledger.Filter{After: index, Limit: 1}); err != nil {
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: %w", index, err)
	}
	p, err := b.audit.Entry(index, size)
	if err != nil {
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: %w", index, err)
	}
	out := httpapi.EntryProof{Entry: p.Entry, Leaf: p.Leaf, Size: p.Size, Root: base64.StdEncoding.EncodeToString(p.Root[:])}
	for _, h := range p.Proof {
		out.Proof = append(out.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out, nil
}

// consoleBackend is the API's backend once the console is mounted: the
// node's backend, and the console's one-time sign-in links
// (httpapi.LinkBackend, POST /v1/ui/links).
type consoleBackend struct {
	*backend
	console *console.Console
	now     func() time.Time
}

var _ httpapi.LinkBackend = consoleBackend{}

// ConsoleLink makes a one-time sign-in link for user on this replica's
// console; the API has checked that actor may manage users. A link signs
// in as a token would, so making one is recorded first, as a user entry
// (body: the actor, and "sign-in link for user NAME"; digest: of the
// user, the replica and the expiry), never with the link's secret.
func (cb consoleBackend) ConsoleLink(ctx context.Context, actor httpapi.User, user string) (httpapi.Link, error) {
	if _, err := cb.users.audit.Get(nsUsers, user); errors.Is(err, ledger.ErrNotFound) {
		return httpapi.Link{}, fmt.Errorf("make sign-in link: no user %q ('xborder user list'): %w", user, httpapi.ErrNotFound)
	} else if err != nil {
		return httpapi.Link{}, fmt.Errorf("make sign-in link: %w", err)
	}
	expires := cb.now().Add(console.DefaultLinkTTL).UTC()
	rec, _ := json.Marshal(struct {
		User    string    `json:"user"`
		Replica string    `json:"replica"`
		Expires time.Time `json:"expires"`
	}{user, cb.replica, expires})
	if err := cb.users.userEntry(ctx, actorName(actor), "sign-in link for user "+user, rec); err != nil {
		return httpapi.Link{}, fmt.Errorf("make sign-in link: %w", err)
	}
	path, err := cb.console.Link(ctx, user, console.DefaultLinkTTL)
	if err != nil {
		return httpapi.Link{}, err
	}
	return httpapi.Link{User: user, Path: path, Expires: expires}, nil
}

// apiHandler returns the replica's API listener's handler: the HTTP API
// (built from cfg, whose Backend it sets) and the web console under /ui/,
// both over b. ledgerKey is the audit ledger's note verifier key, with
// which the console's auditor pages verify checkpoints; now is the node's
// clock (sessions and links expire by it). It returns the console too,
// which the node closes before its host and ledgers (Console.Close ends
// the queries it runs in the background).
func apiHandler(b *backend, cfg httpapi.Config, ledgerKey string, now func() time.Time, log *slog.Logger) (http.Handler, *console.Console, error) {
	c, err := console.New(console.Config{Backend: b, LedgerKey: ledgerKey, Agency: b.agency, Logger: log, Now: now})
	if err != nil {
		return nil, nil, fmt.Errorf("open node: console: %w", err)
	}
	cfg.Backend = consoleBackend{backend: b, console: c, now: now}
	return console.Mount(httpapi.New(cfg), c), c, nil
}

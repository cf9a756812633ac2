// Package console implements xborder's web console: server-rendered pages
// under /ui/ on a replica's API listener, for investigators, approvers,
// auditors, stewards, admins and liaison officers (docs/console.md).
//
// # How
//
// The console is a client of the node, never a side door: it reaches the
// node only through Backend, the same calls the HTTP API makes
// (internal/httpapi), so every page goes through the node's users, its
// policy in force and its ledger. node builds a Console with New and mounts
// it beside the API with Mount:
//
//	browser ──cookie──▶ session ──▶ role's pages ──▶ Authorize(action)
//	        ──form + CSRF token──▶ Backend (Query, Approve, Entries, …)
//	        ──▶ html/template page (embedded), SVG drawn here
//
// Sign-in takes an API token, pasted once (Backend.Authenticate), or a
// one-time link made by Link; either starts a session. The session store
// is in memory, keyed by the SHA-256 of the session ID, and holds the
// user's name, role, expiry and the session's CSRF token: no API token and
// no identifier of a query. Each request re-reads the user, so a removed
// user or a changed role ends the session. A role sees only its pages; a
// page that needs a policy action (read_ledger) asks Backend.Authorize too.
//
// A query runs in the background: the form's POST starts it and answers
// with a redirect to its page, which lists each partner with its state as
// the node reports it (Progresser) and reloads itself with a meta refresh
// (no script) until the result is there. Optional Backend extensions add
// pages or parts of pages where the node implements them: Refuser,
// Progresser, Operator (copies of partners' sets, budgets),
// httpapi.FollowupInboxBackend (the liaison's inbox) and
// httpapi.FollowupOutBackend (the investigator's follow-ups).
//
// The auditor's entry page checks the entry against the newest signed
// checkpoint with ledger/format and x/mod's tlog, the code of `xborder
// ledger verify` and `ledger show`: the checkpoint's signature with the
// agency's ledger key (Config.LedgerKey), the leaf against the header, the
// body against its hash, and the RFC 6962 inclusion proof to the signed
// root. The page says that the check runs on the replica, and how to
// repeat it without trusting the replica.
//
// # Security
//
// Every answer carries a Content-Security-Policy with no script source at
// all ("default-src 'none'; style-src 'self'; ..."), and is neither framed
// nor cached. The session cookie is HttpOnly, SameSite=Strict, Secure when
// the request came over TLS, scoped to /ui/ and expiring
// (Config.SessionTTL). Every form carries a CSRF token: the session's, or,
// on the sign-in forms, an HMAC of a pre-session cookie; a form whose
// Origin names another origin is refused too. Failed sign-ins are limited
// per address (Config.MaxFailures). Sign-in links are random 256-bit
// secrets, single use, expiring (DefaultLinkTTL), and only their hash is
// kept. A query's lines live in the memory of its run, to show its hits
// as the investigator's lines, until runTTL after it ends or sign-out,
// and never in the session store; the log gets user names, roles and
// paths, never tokens, secrets or values. Sessions live on the replica that made them:
// a restart signs everyone out.
package console

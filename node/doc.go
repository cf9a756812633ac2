// Package node implements the process an agency runs: one replica of its
// xborder node, wiring the parts of DESIGN.md together (libp2p host, badger,
// the audit and data Raft groups, the local HTTP API, metrics).
//
// Init makes a data directory (keys, seed, CA, replica certificate, a
// documented config.yaml and the first admin's token); Open starts a replica
// from it and Close stops it:
//
//	Open(ctx, Config{Dir})
//	  ├─ CheckSecrets: every secret file 0600, or ErrSecretMode
//	  ├─ tlsnet.Listen(listen.raft) ── one mutual-TLS Mux for both groups
//	  │    ├─ Layer("audit") ─▶ ledger.Open(DIR/audit)  users, pins, policy, replicas, audit entries
//	  │    ├─ Layer("data")  ─▶ ledger.Open(DIR/data)   holdings
//	  │    └─ Layer("join")  ─▶ adds the replica a join request's certificate names
//	  ├─ host.New(listen.p2p) ─ gater fed by SetCards(own card, pinned cards)
//	  ├─ HTTP API on listen.api (internal/httpapi; Backend is this package)
//	  └─ watch loop: picks up what Raft applied (pins, policy in force,
//	     replicas), refreshes metrics, and on the leader seeds the first admin
//	     and records this replica
//
// A new replica starts from a join Bundle (the API's replica add, on the
// replica that holds the agency CA key, then InitFromBundle): a certificate
// from the agency CA, the agency key, epoch seed and admin token, and the
// members' transport addresses. It starts with bootstrap false and asks a member on
// the "join" channel to add it; the member adds the replica ID that the
// connection's certificate names to both groups (ledger AddVoter, run on the
// leader) and appends a replica entry. Writes on a follower are forwarded
// to the leader by the ledger over the same transport.
//
// State that every replica must agree on lives in the audit group's
// replicated records (ledger Put/Get/Scan): users (ns "users", token
// SHA-256 only, indexed by hash in "tokens"), pins ("pins", binary cards),
// policy files by version ("policy"), replicas ("replicas", and removed IDs
// in "replicas_removed"). Each change is also an audit entry.
// The policy in force is the one the ledger names (that of its last policy
// entry); each replica loads its files from the records when that changes.
//
// # Components
//
// Node is wiring: Open builds the parts below in start, the watch loop
// feeds them what Raft applied, and Close stops them in reverse order. Each
// is a type of its own, built by its constructor from what it uses (the
// audit and data groups as *raftGroup, the local store, the clock, a
// logger, its metrics) and, for what another part owns, a small interface
// declared in its own file. None holds the Node. docs/architecture.md has
// the table of every component, its files and its dependencies.
//
//	administration  policySource (policy.go)   the policy in force
//	                users (users.go)           users, tokens, authorisation
//	                cards (partners.go)        own card, pinned partners, the host's allow set
//	                replicaSet (join.go, bundle.go)  replica records, join, removal, bundles
//	holdings        epochs (epochs.go)         epoch seeds, keys, rotation
//	                localSets (sets.go, precompute*.go)  this replica's encoded sets
//	                holdings (holdings.go, imports.go, import_warnings.go, manifests.go, erase.go, compact.go, orphans.go, rows.go)
//	                syncOwner (sync_owner.go)  the owner's side of sync
//	                partnerSets, cardChecker (sync.go, sync_loop.go)  partners' sets and re-pinned cards
//	matching        querier (query.go, query_result.go, approve.go)  outbound queries and approvals
//	                admission (match_in.go)    inbound queries: policy, admit, evaluate
//	witnessing      witnessing (witness.go, witness_collect.go)  partners' checkpoints cosigned, alarms, cosignatures collected
//	HTTP            backend (api.go, query_api.go, holdings_api.go)  routes to the above
//	network edge    node/host                  libp2p host and connection gater
//
// The network edge, the libp2p host and its connection gater, is package
// node/host. Agency cards, by which partners are pinned, are in
// internal/card. docs/network.md describes the network, docs/operators.md
// the operation, docs/api.yaml the API.
//
// # Security
//
// Secrets are files of mode 0600 and never flag values; the node refuses to
// start when one is readable by group or others. API tokens are 32 random
// bytes stored only as SHA-256; failed authentications are rate-limited and
// logged without the token. Every API action is decided by the policy in
// force (admins always keep the admin verbs). The API listens on 127.0.0.1
// by default and speaks plain HTTP there; bound anywhere else it speaks TLS
// 1.3 with the replica's certificate, which clients check against the
// agency CA (httpapi.AgencyHTTPClient). /metrics, /healthz and /readyz need
// no token.
//
// Peers are checked by the connection gater of node/host (see its Security
// section). A pinned card is trusted only after its signature, validity and
// (when given) out-of-band fingerprint check; a replacement must come from
// the same agency key with a higher sequence.
package node

// Package exchange implements the node-to-node protocols of xborder (match,
// sync, witness) over streams it is handed.
//
// It never dials, listens or names a transport: the node adapts its libp2p
// host to the small seams declared here. A handler receives a [Stream] from a
// [Peer] that the node has already admitted (a pinned partner replica or one
// of the agency's own replicas, with its agency code), and an [Opener] opens
// streams to such peers. Tests drive the protocols over in-memory pipes.
//
// # How
//
// Every stream carries one request and its answer, as uvarint-length-framed
// protobuf messages (package internal/wire; docs/protocol.md has the bytes).
// Requests, answers and set segments are signed with the sender's Ed25519
// agency key under a context string per use ("xborder/v1/match-request",
// "xborder/v1/match-answer", "xborder/v1/sync-request",
// "xborder/v1/sync-answer", "xborder/v1/set").
//
//	Querier (Client)                               Responder (Server)
//	ProtoMatch:
//	  MatchRequest{ID, time, FR->DE, kind, epoch,  -> peer pinned as FR? signed by
//	    mode, reaches, padded size, case, basis,      FR's pinned key? fresh (2 min)?
//	    offence, purpose, urgency, SHA-256(batch),    size, batch digest, mode and
//	    batch (blinded once)}                         reaches? Admitter.Permit (policy:
//	                                                  each reach allowed in the mode?)
//	                                                  key for (kind, epoch, reach)?
//	                                                  Admitter.Admit (policy + committed
//	                                                  ledger entry), then, only then,
//	                                                  Evaluate under each reach's key
//	  verify DE's signature, ID, digests;       <-  MatchAnswer{ok, per reach: reach,
//	  each evaluation's proofs under the              set version, evaluation} or
//	  pinned key of its reach                         {denied, reason} or {unavailable},
//	                                                  signed by DE
//	ProtoSync:
//	  SyncRequest{ID, time, kind, reach, epoch,    -> same checks; SyncAuthorizer
//	    held base and version}                        (policy: kinds and reaches this
//	                                                  partner may query); SyncAuditor
//	                                                  (ledger entry)
//	  Cards.Check(card) -> epoch keys;          <-  SyncAnswer{card, n}, then n
//	  each segment: signature, digest, epoch          Segments{agency, kind, reach,
//	  key of the reach on the card,                   epoch, base, version, SHA-256,
//	  psi.Set.Apply                                   data}
//
// ProtoWitness is a C2SP tlog-witness: [Witness] cosigns a partner's
// checkpoint (C2SP tlog-cosignature, Ed25519 cosignature/v1, through
// transparency-dev's note package) only when it extends the one it last
// cosigned, kept in a [WitnessState]; a split view becomes an [Alarm].
// [Client.AddCheckpoint] and [Client.LatestCheckpoint] ask a partner's
// witness (docs/witness.md).
//
// The node supplies everything else through interfaces defined here and
// implemented in package node: [Keys] (pinned agency keys), [Admitter]
// (policy and ledger.Admit), [Responders] (psi keys per kind, epoch and
// reach),
// [Sets] (encoded sets and the card), [SyncAuthorizer], [SyncAuditor] and,
// on the querier's side, [Cards].
//
// # Security
//
// Admission by the node only says which agency holds the peer's transport
// key. Everything read from a Stream is hostile until checked: messages are
// size-limited, requests and answers are signed by the agency key and fresh,
// and every stream carries a deadline (DESIGN.md, invariant 6). A server
// evaluates nothing before the Admitter has admitted the request (invariants
// 2 and 3): every refusal before that point is answered with a signed denial
// whose reason comes from a closed list that repeats none of the request's
// text, or, for bytes that do not decode or exceed a limit, by resetting the
// stream. A replayed request ID is the ledger's to detect (Admit); the
// server passes every ID through, but refuses a copy of a request it has
// evaluated itself (which the ledger would admit again as a retry). Each
// partner agency has a few requests in flight at once and a budget of
// refusals; past it the server throttles the agency (resets its streams
// unread), so that a flood of refused requests writes a bounded number of
// denial entries. A querier uses nothing that its partner's
// pinned agency key did not sign: answers, segments (whose signature covers
// the digest, hence the set's epoch key) and the card that lists that epoch
// key. Signature checks are Ed25519 (crypto/ed25519); digest comparisons are
// not constant time, and need not be (public values).
package exchange

import (
	"context"
	"io"
	"time"
)

// Protocol IDs, versioned: a change to a protocol's messages gets a new ID.
const (
	// ProtoMatch carries one match query and its answer.
	ProtoMatch = "/xborder/match/2.0.0"
	// ProtoSync carries encoded sets, their deltas and the newest agency card.
	ProtoSync = "/xborder/sync/2.0.0"
)

// Stream is a bidirectional byte stream to one peer. A libp2p
// network.Stream satisfies it.
//
// Close closes both directions; CloseWrite tells the peer that nothing more
// will be written and keeps reading open; Reset aborts the stream in both
// directions (use it on any protocol error, so that the peer does not take a
// truncated message for a complete one). SetDeadline bounds every later Read
// and Write; a zero time removes the deadline.
type Stream interface {
	io.ReadWriteCloser
	CloseWrite() error
	Reset() error
	SetDeadline(time.Time) error
}

// PeerID names a peer by the text form of its libp2p identity, as agency
// cards print it (for example "12D3KooW…").
type PeerID string

// Peer is the admitted remote end of a stream: its identity and the agency
// code (ISO 3166 alpha-2) of the card that pinned it.
type Peer struct {
	ID     PeerID
	Agency string
}

// Opener opens streams to admitted peers. Open fails when the peer is not
// pinned, cannot be reached before ctx ends, or does not speak proto. The
// returned stream already carries a deadline; the caller closes or resets it.
type Opener interface {
	Open(ctx context.Context, peer PeerID, proto string) (Stream, error)
}

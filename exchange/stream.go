// Package exchange implements the node-to-node protocols of xborder (match,
// sync) over streams it is handed.
//
// It never dials, listens or names a transport: the node adapts its libp2p
// host to the small seams declared here. A handler receives a [Stream] from a
// [Peer] that the node has already admitted (a pinned partner replica or one
// of the agency's own replicas, with its agency code), and an [Opener] opens
// streams to such peers. Tests drive the protocols over in-memory pipes.
//
// # Security
//
// Admission by the node only says which agency holds the peer's transport
// key. Everything read from a Stream is hostile until checked: messages are
// size-limited, requests and answers are signed by the agency key and fresh,
// and every stream carries a deadline (DESIGN.md, invariant 6).
package exchange

import (
	"context"
	"io"
	"time"
)

// Protocol IDs, versioned: a change to a protocol's messages gets a new ID.
const (
	// ProtoMatch carries one match query and its answer.
	ProtoMatch = "/xborder/match/1.0.0"
	// ProtoSync carries encoded sets, their deltas and the newest agency card.
	ProtoSync = "/xborder/sync/1.0.0"
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

// Package host implements a replica's network edge: its libp2p host
// (Ed25519 identity, TCP only, Noise, yamux; no discovery, relays, hole
// punching, AutoNAT or port mapping), with a connection gater that admits
// only the peers of an allow set ([Host.SetCards] or [Host.SetAllowed]: the
// agency's own replicas and its pinned partners' replicas, each with its
// agency code) and a resource manager with fixed limits ([DefaultLimits]).
//
// [New] starts a host from a [Config]; [Host] adapts it to exchange's
// seams: [Host.Open] satisfies exchange.Opener and [Host.Handle] hands
// admitted streams to exchange's handlers. Package node builds one host per
// replica and feeds its gater from the agency's own card and the pinned
// partners' cards (internal/card). docs/network.md describes the network.
//
// # Security
//
// The peer ID, proven by the Noise handshake, is the only thing the gater
// trusts; addresses are hints. A peer is checked three times: before a dial,
// once its connection is authenticated (both directions), and again when it
// opens a stream, so a partner removed from the allow set loses its
// connections and any stream that raced the removal. Every stream, handled
// or opened, carries a deadline. One agency, all the replicas its card lists
// together, has at most [Config.AgencyStreams] streams handled at once, and
// each peer at most 32 inbound streams, negotiated or not, so that a pinned
// partner cannot shut the others out. Admission says only which agency holds the
// peer's transport key: exchange still checks signatures, freshness and
// sizes of everything it reads.
package host

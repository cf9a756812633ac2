// Package tlsnet implements the transport between an agency's replicas: TCP
// with mutual TLS 1.3, one listener per replica, multiplexing several
// channels (the Raft groups "audit" and "data" and their leader-forwarding
// traffic) as [github.com/hashicorp/raft.StreamLayer]s. It also holds the
// agency's small certificate authority for replica certificates.
//
// A replica calls [Listen] once and takes one [Layer] per channel from the
// [Mux]; each Layer is handed to raft.NewNetworkTransport or used directly
// for forwarding:
//
//	dialer                                   listener (Mux)
//	  TCP connect ---------------------------->  accept loop
//	  TLS 1.3 handshake, both certificates <-->  goroutine per connection,
//	  "xbt1" | len | channel name ----------->   bounded by HandshakeTimeout
//	                  <----------- status byte   (0 ok, 1 unknown channel,
//	                                              2 refused: Layer.SetAdmit)
//	  raft / forwarding bytes <-------------->   Layer(name).Accept
//
// A connection whose handshake or header does not arrive within the
// handshake timeout is closed by its own goroutine, so a slow or silent
// client never holds up the accept loop; a connection for a channel with
// no open layer is answered "unknown", closed and logged. Closing a Layer
// closes its connections; closing the Mux closes everything and waits for
// its goroutines.
//
// [CA] makes the agency's self-signed Ed25519 CA and issues replica
// certificates valid for both server and client authentication, which name
// the replica in the CommonName and in the URI SAN
// xborder://<agency>/replica/<id>. [PeerID] returns that ID for an
// accepted or dialled connection.
//
// # Security
//
// Both sides present certificates and both check them the same way: the
// peer's certificate must chain to the agency CA in [Config.Roots], be
// within its validity period and carry the right extended key usage, and
// its URI SAN must name the same agency as our own certificate. Host names
// and IP addresses are deliberately not checked: a replica's identity is
// its certificate, not its address, so replicas may dial 127.0.0.1 or any
// address. Anyone holding the CA key can mint replicas, so that key belongs
// only on the machine that runs `init` and `replica add`; a replica needs
// only the CA certificate and its own key. The TLS layer has no
// revocation: a removed replica's certificate still completes a handshake
// until it expires (after [ReplicaValidity]); replace the CA to cut off a
// stolen key everywhere. But each layer may refuse authenticated peers by
// replica ID ([Layer.SetAdmit]) right after the handshake, before anything
// is sent on the channel: the ledger refuses the replicas it has removed
// and revoked on their group's channel. Only TLS 1.3 is offered. The channel name travels inside TLS, after
// authentication, so an unauthenticated client learns nothing about the
// channels. Logs carry replica IDs, addresses, channel names and errors,
// never key material.
package tlsnet

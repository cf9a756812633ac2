package tlsnet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
)

// verifyPeer checks that the peer's certificate chains to the agency CA,
// is valid now for usage, and names a replica of our agency; it returns the
// replica ID.
func (m *Mux) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("verify peer: no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}); err != nil {
		return "", fmt.Errorf("verify peer: %w", err)
	}
	agency, id, err := ReplicaName(leaf)
	if err != nil {
		return "", fmt.Errorf("verify peer: %w", err)
	}
	if agency != m.agency {
		return "", fmt.Errorf("verify peer: replica %s of agency %s, want agency %s", id, agency, m.agency)
	}
	return id, nil
}

// peerName returns the replica ID of a peer whose certificate
// VerifyConnection has checked in the handshake.
func peerName(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("peer name: no certificate")
	}
	_, id, err := ReplicaName(cs.PeerCertificates[0])
	if err != nil {
		return "", fmt.Errorf("peer name: %w", err)
	}
	return id, nil
}

// PeerID returns the replica ID of the peer of a connection returned by
// [Layer.Accept] or [Layer.Dial], as its certificate names it; the
// certificate was verified against the agency CA in the handshake. It
// returns [ErrNotMux] for other connections.
func PeerID(c net.Conn) (string, error) {
	tc, ok := c.(*conn)
	if !ok {
		return "", ErrNotMux
	}
	return tc.peer, nil
}

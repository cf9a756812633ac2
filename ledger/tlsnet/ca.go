package tlsnet

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"
)

// Validity periods of the certificates a CA makes.
const (
	// CAValidity is how long an agency CA certificate is valid from its
	// creation.
	CAValidity = 10 * 365 * 24 * time.Hour
	// ReplicaValidity is how long a replica certificate is valid from its
	// issue.
	ReplicaValidity = 2 * 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a peer whose clock is a little behind
	// still accepts a fresh certificate.
	clockSkew = 5 * time.Minute
)

// uriScheme is the scheme of the URI SAN that names a replica:
// xborder://<agency>/replica/<id>.
const uriScheme = "xborder"

var (
	// ErrBadName is returned when an agency code or replica ID has characters
	// or a length that cannot be carried in a certificate URI. Pick a name of
	// 1 to 64 letters, digits, '.', '_' or '-' (agency codes: no '.' or '_').
	ErrBadName = errors.New("bad agency or replica name")
	// ErrNoReplicaID is returned when a certificate carries no valid
	// xborder://<agency>/replica/<id> URI: it was not issued by [CA.Issue].
	ErrNoReplicaID = errors.New("certificate names no replica")
)

// CA is an agency's own certificate authority for replica TLS. It holds
// the private key: keep its PEM in a 0600 file and hand replicas only
// [CA.CertPEM] and the certificates it issues.
type CA struct {
	agency string
	cert   *x509.Certificate
	der    []byte
	key    ed25519.PrivateKey
}

// NewCA creates a self-signed Ed25519 CA for agency, valid from now (less a
// few minutes for clock skew) for [CAValidity].
func NewCA(agency string, now time.Time) (*CA, error) {
	if !validAgency(agency) {
		return nil, fmt.Errorf("new ca for agency %q: %w", agency, ErrBadName)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new ca: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "xborder " + agency + " replica CA", Organization: []string{agency}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(pub),
		URIs:                  []*url.URL{{Scheme: uriScheme, Host: agency}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("new ca: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new ca: parse certificate: %w", err)
	}
	return &CA{agency: agency, cert: cert, der: der, key: key}, nil
}

// ParseCA decodes a CA from the PEM of its certificate and of its PKCS #8
// private key, as written by [CA.CertPEM] and [CA.KeyPEM], and checks that
// the key matches the certificate.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, der, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse ca: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("parse ca: certificate is not a ca")
	}
	agency, err := caAgency(cert)
	if err != nil {
		return nil, fmt.Errorf("parse ca: %w", err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("parse ca: no PRIVATE KEY block in key pem")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse ca: key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse ca: key is %T, want ed25519", k)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("parse ca: key does not match certificate")
	}
	return &CA{agency: agency, cert: cert, der: der, key: key}, nil
}

// ParseRoots decodes the PEM of an agency CA certificate (as written by
// [CA.CertPEM]) into a pool for [Config.Roots], for replicas that do not
// hold the CA key.
func ParseRoots(certPEM []byte) (*x509.CertPool, error) {
	cert, _, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse roots: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("parse roots: certificate is not a ca")
	}
	if _, err := caAgency(cert); err != nil {
		return nil, fmt.Errorf("parse roots: %w", err)
	}
	p := x509.NewCertPool()
	p.AddCert(cert)
	return p, nil
}

// Agency returns the agency code the CA was made for.
func (ca *CA) Agency() string { return ca.agency }

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pool returns a pool holding only the CA certificate, for [Config.Roots].
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// CertPEM returns the PEM of the CA certificate. It is public: every replica
// needs it to check its peers.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// KeyPEM returns the PEM of the CA's PKCS #8 private key. It is a secret:
// whoever holds it can make replicas of the agency.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("marshal ca key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Issue makes a certificate and a fresh Ed25519 key for the replica
// replicaID, valid for both server and client authentication from now (less
// a few minutes for clock skew) for [ReplicaValidity]. The replica ID is the
// CommonName and the URI SAN xborder://<agency>/replica/<id>; hosts (names
// or IP addresses) are added as SANs for operators' tools, but peers do not
// check them. Both results are PEM: the certificate, then the PKCS #8 key.
func (ca *CA) Issue(replicaID string, hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if !validReplicaID(replicaID) {
		return nil, nil, fmt.Errorf("issue replica certificate %q: %w", replicaID, ErrBadName)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue replica certificate: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("issue replica certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: replicaID, Organization: []string{ca.agency}},
		NotBefore:      now.Add(-clockSkew),
		NotAfter:       now.Add(ReplicaValidity),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		SubjectKeyId:   keyID(pub),
		AuthorityKeyId: ca.cert.SubjectKeyId,
		URIs:           []*url.URL{replicaURI(ca.agency, replicaID)},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue replica certificate: create: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue replica certificate: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// ReplicaName returns the agency code and replica ID that a certificate made
// by [CA.Issue] names in its URI SAN. It does not check the signature or the
// validity period; [Mux] does that for its peers.
func ReplicaName(cert *x509.Certificate) (agency, replicaID string, err error) {
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		id, ok := strings.CutPrefix(u.Path, "/replica/")
		if !ok || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			continue
		}
		if validAgency(u.Host) && validReplicaID(id) {
			return u.Host, id, nil
		}
	}
	return "", "", ErrNoReplicaID
}

func replicaURI(agency, id string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: agency, Path: "/replica/" + id}
}

// caAgency returns the agency a CA certificate made by NewCA names.
func caAgency(cert *x509.Certificate) (string, error) {
	for _, u := range cert.URIs {
		if u.Scheme == uriScheme && (u.Path == "" || u.Path == "/") && validAgency(u.Host) {
			return u.Host, nil
		}
	}
	return "", errors.New("ca certificate names no agency")
}

func parseCertPEM(certPEM []byte) (*x509.Certificate, []byte, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no CERTIFICATE block in pem")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	return cert, b.Bytes, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

func keyID(pub ed25519.PublicKey) []byte {
	h := sha256.Sum256(pub)
	return h[:20]
}

func validAgency(s string) bool { return validName(s, false) }

func validReplicaID(s string) bool { return validName(s, true) }

// validName accepts 1 to 64 ASCII letters, digits and '-', plus '.' and '_'
// when extra is set: all of them are safe in a URI without escaping.
func validName(s string, extra bool) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
		case extra && (c == '.' || c == '_'):
		default:
			return false
		}
	}
	return true
}

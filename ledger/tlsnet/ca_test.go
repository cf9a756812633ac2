package tlsnet

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCARoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	ca, err := NewCA("DE", now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatalf("KeyPEM: %v", err)
	}
	back, err := ParseCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatalf("ParseCA: %v", err)
	}
	if back.Agency() != "DE" || !back.Certificate().Equal(ca.Certificate()) {
		t.Errorf("ParseCA: agency %q, same certificate %v; want DE, true", back.Agency(), back.Certificate().Equal(ca.Certificate()))
	}
	if !bytes.Equal(back.CertPEM(), ca.CertPEM()) {
		t.Errorf("CertPEM after ParseCA differs")
	}
	c := ca.Certificate()
	if !c.IsCA || !c.NotBefore.Before(now) || !c.NotAfter.Equal(now.Add(CAValidity)) {
		t.Errorf("CA certificate: IsCA %v, valid %v to %v; want a CA valid from before %v for %v", c.IsCA, c.NotBefore, c.NotAfter, now, CAValidity)
	}

	// A certificate issued by the parsed CA verifies against the original.
	certPEM, leafKeyPEM, err := back.Issue("replica-1", []string{"127.0.0.1", "node1.example", ""}, now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, leafKeyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	leaf := pair.Leaf
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("Verify replica certificate for usage %v: %v", usage, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now.Add(ReplicaValidity + time.Hour)}); err == nil {
		t.Errorf("replica certificate verifies after %v; want expired", ReplicaValidity)
	}
	agency, id, err := ReplicaName(leaf)
	if err != nil || agency != "DE" || id != "replica-1" {
		t.Errorf("ReplicaName = %q, %q, %v; want DE, replica-1", agency, id, err)
	}
	if leaf.Subject.CommonName != "replica-1" {
		t.Errorf("CommonName = %q; want replica-1", leaf.Subject.CommonName)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "xborder://DE/replica/replica-1" {
		t.Errorf("URIs = %v; want [xborder://DE/replica/replica-1]", leaf.URIs)
	}
	if len(leaf.IPAddresses) != 1 || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "node1.example" {
		t.Errorf("SANs = %v %v; want [127.0.0.1] [node1.example]", leaf.IPAddresses, leaf.DNSNames)
	}
}

func TestCABadInput(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "DE")
	other := newTestCA(t, "DE")
	otherKey, err := other.KeyPEM()
	if err != nil {
		t.Fatalf("KeyPEM: %v", err)
	}
	leafPEM, leafKey, err := ca.Issue("r1", nil, now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	for _, agency := range []string{"", "D E", "DE/x", "d.e", strings.Repeat("A", 65)} {
		if _, err := NewCA(agency, now); !errors.Is(err, ErrBadName) {
			t.Errorf("NewCA(%q) = %v; want ErrBadName", agency, err)
		}
	}
	for _, id := range []string{"", "r 1", "r/1", "r?1", "é", strings.Repeat("r", 65)} {
		if _, _, err := ca.Issue(id, nil, now); !errors.Is(err, ErrBadName) {
			t.Errorf("Issue(%q) = %v; want ErrBadName", id, err)
		}
	}
	parse := []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"key of another CA", ca.CertPEM(), otherKey, "does not match"},
		{"replica certificate", leafPEM, leafKey, "not a ca"},
		{"no certificate", nil, otherKey, "no CERTIFICATE"},
		{"no key", ca.CertPEM(), leafPEM, "no PRIVATE KEY"},
	}
	for _, tc := range parse {
		if _, err := ParseCA(tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCA with %s = %v; want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestReplicaName(t *testing.T) {
	tests := []struct {
		uri    string
		agency string
		id     string
	}{
		{"xborder://DE/replica/r1", "DE", "r1"},
		{"xborder://DE/replica/", "", ""},
		{"xborder://DE/replica/a/b", "", ""},
		{"xborder://DE/other/r1", "", ""},
		{"https://DE/replica/r1", "", ""},
		{"xborder://user@DE/replica/r1", "", ""},
		{"xborder://DE/replica/r1?x=1", "", ""},
		{"xborder://D_E/replica/r1", "", ""},
		{"xborder://DE/replica/r_1.x-2", "DE", "r_1.x-2"},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.uri)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", tc.uri, err)
		}
		agency, id, err := ReplicaName(&x509.Certificate{URIs: []*url.URL{u}})
		if tc.id == "" {
			if !errors.Is(err, ErrNoReplicaID) {
				t.Errorf("ReplicaName(%s) = %q, %q, %v; want ErrNoReplicaID", tc.uri, agency, id, err)
			}
			continue
		}
		if err != nil || agency != tc.agency || id != tc.id {
			t.Errorf("ReplicaName(%s) = %q, %q, %v; want %q, %q", tc.uri, agency, id, err, tc.agency, tc.id)
		}
	}
}

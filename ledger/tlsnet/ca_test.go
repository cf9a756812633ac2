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

func TestParseRoots(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "DE")
	leafPEM, _, err := ca.Issue("r1", nil, now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	roots, err := ParseRoots(ca.CertPEM())
	if err != nil {
		t.Fatalf("ParseRoots: %v", err)
	}
	leaf, _, err := parseCertPEM(leafPEM)
	if err != nil {
		t.Fatalf("parse leaf: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("Verify against ParseRoots pool: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("junk"), leafPEM} {
		if _, err := ParseRoots(bad); err == nil {
			t.Errorf("ParseRoots(%.20q) succeeded; want an error", bad)
		}
	}
}

// FuzzParseCA checks that CA files never crash the decoder and that what
// it accepts encodes back to an equivalent CA.
func FuzzParseCA(f *testing.F) {
	ca := newTestCA(f, "DE")
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		f.Fatal(err)
	}
	leafPEM, leafKey, err := ca.Issue("r1", nil, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca.CertPEM(), keyPEM)
	f.Add(leafPEM, leafKey)
	f.Add(ca.CertPEM(), leafKey)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), keyPEM)
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		_, rootsErr := ParseRoots(certPEM)
		ca, err := ParseCA(certPEM, keyPEM)
		if err != nil {
			return
		}
		if rootsErr != nil {
			t.Fatalf("ParseCA accepted a certificate that ParseRoots refused: %v", rootsErr)
		}
		k, err := ca.KeyPEM()
		if err != nil {
			t.Fatalf("KeyPEM of a parsed CA: %v", err)
		}
		back, err := ParseCA(ca.CertPEM(), k)
		if err != nil || back.Agency() != ca.Agency() || !back.Certificate().Equal(ca.Certificate()) {
			t.Fatalf("ParseCA of re-encoded CA = %v", err)
		}
	})
}

// FuzzReplicaName checks that the URI SAN decoder only accepts what the
// issuer writes.
func FuzzReplicaName(f *testing.F) {
	f.Add("xborder://DE/replica/r1")
	f.Add("xborder://DE/replica/../x")
	f.Add("xborder://DE:1/replica/r1")
	f.Add("xborder:opaque")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		agency, id, err := ReplicaName(&x509.Certificate{URIs: []*url.URL{u}})
		if err != nil {
			return
		}
		if got := replicaURI(agency, id).String(); got != u.String() {
			t.Fatalf("ReplicaName(%q) = %q, %q, which the issuer writes as %q", s, agency, id, got)
		}
	})
}

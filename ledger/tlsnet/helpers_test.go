package tlsnet

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestCA makes a CA for agency or fails the test.
func newTestCA(t testing.TB, agency string) *CA {
	t.Helper()
	ca, err := NewCA(agency, time.Now())
	if err != nil {
		t.Fatalf("NewCA(%q): %v", agency, err)
	}
	return ca
}

// config returns a Config for replica id with a certificate issued by
// issuer at time at, trusting roots.
func config(t testing.TB, issuer, roots *CA, id string, at time.Time) Config {
	t.Helper()
	certPEM, keyPEM, err := issuer.Issue(id, []string{"127.0.0.1", "localhost"}, at)
	if err != nil {
		t.Fatalf("Issue(%q): %v", id, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	// Timeouts are loose for a loaded machine under -race; warnings show
	// in the output of a failed test.
	return Config{
		Certificate:      cert,
		Roots:            roots.Pool(),
		HandshakeTimeout: 5 * time.Second,
		DialTimeout:      5 * time.Second,
		Logger:           slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// listen starts a Mux on 127.0.0.1:0 and closes it when the test ends.
func listen(t testing.TB, cfg Config) *Mux {
	t.Helper()
	m, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// serveEcho answers every line on every connection of l with
// "<channel> <peer> <line>". Its goroutines end when l closes; wait for
// them on wg.
func serveEcho(l *Layer, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = c.Close() }()
				peer, err := PeerID(c)
				if err != nil {
					return
				}
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := fmt.Fprintf(c, "%s %s %s", l.Name(), peer, line); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// roundTrip writes msg as a line to c and returns the answer line.
func roundTrip(c net.Conn, msg string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package tlsnet

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var channels = []string{"audit", "audit/fwd", "data", "data/fwd"}

// TestChannels has three muxes talk to each other on four channels at
// once: every answer must come from the channel dialled, and each side
// must see the other's replica ID.
func TestChannels(t *testing.T) {
	ca := newTestCA(t, "DE")
	ids := []string{"r1", "r2", "r3"}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // runs after the muxes close
	muxes := make([]*Mux, len(ids))
	for i, id := range ids {
		muxes[i] = listen(t, config(t, ca, ca, id, time.Now()))
		for _, ch := range channels {
			serveEcho(muxes[i].Layer(ch), &wg)
		}
	}

	const rounds = 5
	errs := make(chan error, len(ids)*len(ids)*len(channels))
	var clients sync.WaitGroup
	for i, from := range muxes {
		for j, to := range muxes {
			if i == j {
				continue
			}
			for _, ch := range channels {
				clients.Add(1)
				go func() {
					defer clients.Done()
					errs <- exchange(from, to, ch, rounds)
				}()
			}
		}
	}
	clients.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// exchange dials ch from one mux to another and checks rounds answers.
func exchange(from, to *Mux, ch string, rounds int) error {
	c, err := from.Layer(ch).Dial(raft.ServerAddress(to.Layer(ch).Addr().String()), 5*time.Second)
	if err != nil {
		return fmt.Errorf("%s -> %s on %s: dial: %w", from.ReplicaID(), to.ReplicaID(), ch, err)
	}
	defer func() { _ = c.Close() }()
	if peer, err := PeerID(c); err != nil || peer != to.ReplicaID() {
		return fmt.Errorf("%s -> %s on %s: PeerID = %q, %v; want %q", from.ReplicaID(), to.ReplicaID(), ch, peer, err, to.ReplicaID())
	}
	for k := range rounds {
		msg := fmt.Sprintf("msg-%d", k)
		got, err := roundTrip(c, msg)
		if err != nil {
			return fmt.Errorf("%s -> %s on %s: round trip: %w", from.ReplicaID(), to.ReplicaID(), ch, err)
		}
		if want := ch + " " + from.ReplicaID() + " " + msg; got != want {
			return fmt.Errorf("%s -> %s on %s: answer %q; want %q", from.ReplicaID(), to.ReplicaID(), ch, got, want)
		}
	}
	return nil
}

// TestRefused checks that a replica with a certificate that is not good
// for the agency can neither connect nor be connected to, and that the
// listener still serves good replicas afterwards.
func TestRefused(t *testing.T) {
	ca := newTestCA(t, "DE")
	other := newTestCA(t, "DE") // same agency code, different key
	foreign := newTestCA(t, "FR")
	now := time.Now()
	expired := now.Add(-ReplicaValidity - time.Hour)
	notYet := now.Add(time.Hour)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"other CA", config(t, other, ca, "bad", now)},
		{"other agency", config(t, foreign, ca, "bad", now)},
		{"expired", config(t, ca, ca, "bad", expired)},
		{"not yet valid", config(t, ca, ca, "bad", notYet)},
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	good := listen(t, config(t, ca, ca, "good", now))
	friend := listen(t, config(t, ca, ca, "friend", now))
	serveEcho(friend.Layer("audit"), &wg)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := listen(t, tc.cfg)
			serveEcho(bad.Layer("audit"), &wg)

			// As a client: the good replica refuses the handshake, and
			// its Accept only ever sees the friend that dials next.
			accepted := make(chan string, 1)
			go func() {
				c, err := good.Layer("audit").Accept()
				if err != nil {
					accepted <- "error: " + err.Error()
					return
				}
				id, _ := PeerID(c)
				_ = c.Close()
				accepted <- id
			}()
			if c, err := bad.Layer("audit").Dial(raft.ServerAddress(good.Layer("audit").Addr().String()), 5*time.Second); err == nil {
				_ = c.Close()
				t.Errorf("Dial from a replica with a %s certificate succeeded; want an error", tc.name)
			}
			c, err := friend.Layer("audit").Dial(raft.ServerAddress(good.Layer("audit").Addr().String()), 5*time.Second)
			if err != nil {
				t.Fatalf("Dial from friend after refusal: %v", err)
			}
			_ = c.Close()
			if got := <-accepted; got != "friend" {
				t.Errorf("first accepted peer = %q; want %q", got, "friend")
			}

			// As a server: the good replica refuses the bad one's
			// certificate.
			if c, err := good.Layer("audit").Dial(raft.ServerAddress(bad.Layer("audit").Addr().String()), 5*time.Second); err == nil {
				_ = c.Close()
				t.Errorf("Dial to a replica with a %s certificate succeeded; want an error", tc.name)
			}
		})
	}
}

// TestUnknownChannel dials channels the peer does not serve.
func TestUnknownChannel(t *testing.T) {
	ca := newTestCA(t, "DE")
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	a := listen(t, config(t, ca, ca, "a", time.Now()))
	var logs syncBuffer
	cfgB := config(t, ca, ca, "b", time.Now())
	cfgB.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b := listen(t, cfgB)
	serveEcho(b.Layer("audit"), &wg)
	closed := b.Layer("data")
	if err := closed.Close(); err != nil {
		t.Fatalf("Layer.Close: %v", err)
	}
	for _, ch := range []string{"nope", "data", "audit/fwd"} {
		c, err := a.Layer(ch).Dial(raft.ServerAddress(b.Layer("audit").Addr().String()), 5*time.Second)
		if !errors.Is(err, ErrUnknownChannel) {
			if c != nil {
				_ = c.Close()
			}
			t.Errorf("Dial on %q = %v; want ErrUnknownChannel", ch, err)
		}
	}
	if _, err := closed.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed layer = %v; want net.ErrClosed", err)
	}
	out := logs.String()
	for _, want := range []string{"unknown channel", "channel=nope", "peer=a", "channel=audit/fwd"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "CERTIFICATE") {
		t.Errorf("log holds key or certificate material:\n%s", out)
	}
	// A layer reopened after Close serves again.
	serveEcho(b.Layer("data"), &wg)
	if err := exchange(a, b, "data", 1); err != nil {
		t.Error(err)
	}
	if err := exchange(a, b, "audit", 1); err != nil {
		t.Error(err)
	}
}

// TestSlowClients checks that clients that connect and then stay silent, or
// send garbage, neither block other connections nor stay open past the
// handshake timeout.
func TestSlowClients(t *testing.T) {
	ca := newTestCA(t, "DE")
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	cfg := config(t, ca, ca, "srv", time.Now())
	cfg.HandshakeTimeout = time.Second
	srv := listen(t, cfg)
	serveEcho(srv.Layer("audit"), &wg)
	cli := listen(t, config(t, ca, ca, "cli", time.Now()))
	addr := srv.Layer("audit").Addr().String()

	// Silent before TLS, silent after TLS, and plain-text garbage.
	var raws []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("net.Dial: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		raws = append(raws, c)
	}
	tc := tls.Client(raws[1], cli.client)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake of the silent TLS client: %v", err)
	}
	if _, err := raws[2].Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatalf("write garbage: %v", err)
	}

	start := time.Now()
	if err := exchange(cli, srv, "audit", 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > cfg.HandshakeTimeout {
		t.Errorf("good exchange took %v behind slow clients; want less than the handshake timeout %v", d, cfg.HandshakeTimeout)
	}
	readers := []io.Reader{raws[0], tc, raws[2]}
	for i, r := range readers {
		_ = raws[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(r)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("slow client %d: still open after 5 s; want closed after %v", i, cfg.HandshakeTimeout)
		}
	}
}

// TestClose checks what closing a Mux does to its layers, its peers and
// its port.
func TestClose(t *testing.T) {
	ca := newTestCA(t, "DE")
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	cfgA := config(t, ca, ca, "a", time.Now())
	a, err := Listen("127.0.0.1:0", cfgA)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	b := listen(t, config(t, ca, ca, "b", time.Now()))
	serveEcho(a.Layer("audit"), &wg)
	serveEcho(b.Layer("audit"), &wg)
	addr := a.Addr().String()

	in, err := b.Layer("audit").Dial(raft.ServerAddress(addr), 5*time.Second) // b -> a
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer func() { _ = in.Close() }()
	if _, err := roundTrip(in, "hello"); err != nil {
		t.Fatalf("round trip before close: %v", err)
	}
	out, err := a.Layer("audit").Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second) // a -> b
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := a.Layer("audit").Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v; want net.ErrClosed", err)
	}
	if _, err := a.Layer("data").Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a new layer after Close = %v; want net.ErrClosed", err)
	}
	if _, err := a.Layer("audit").Dial(raft.ServerAddress(b.Addr().String()), time.Second); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close = %v; want net.ErrClosed", err)
	}
	if _, err := out.Write([]byte("x\n")); err == nil {
		t.Errorf("Write on a dialled connection after Close succeeded; want an error")
	}
	// The peer sees both connections end.
	_ = in.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := in.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("peer Read after Close = %d, %v; want the connection closed", n, err)
	}
	if _, err := b.Layer("audit").Dial(raft.ServerAddress(addr), time.Second); err == nil {
		t.Errorf("Dial to a closed mux succeeded")
	}

	// The port is free again: a replica comes back on the same address.
	again, err := Listen(addr, cfgA)
	if err != nil {
		t.Fatalf("Listen again on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = again.Close() })
	serveEcho(again.Layer("audit"), &wg)
	if err := exchange(b, again, "audit", 1); err != nil {
		t.Error(err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPeerIDOfOtherConn(t *testing.T) {
	a, b := net.Pipe()
	defer func() { _ = a.Close(); _ = b.Close() }()
	if _, err := PeerID(a); !errors.Is(err, ErrNotMux) {
		t.Errorf("PeerID(net.Pipe) = %v; want ErrNotMux", err)
	}
}

func TestListenConfig(t *testing.T) {
	ca := newTestCA(t, "DE")
	good := config(t, ca, ca, "r1", time.Now())
	noRoots := good
	noRoots.Roots = nil
	leafless := good
	leafless.Certificate.Leaf = nil
	advertised := good
	advertised.Advertise = "10.0.0.1:7000"
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
		addr    string
	}{
		{"no certificate", Config{Roots: ca.Pool()}, "no certificate", ""},
		{"no roots", noRoots, "no roots", ""},
		{"leaf parsed", leafless, "", ""},
		{"advertise", advertised, "", "10.0.0.1:7000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Listen("127.0.0.1:0", tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Listen = %v; want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer func() { _ = m.Close() }()
			if m.ReplicaID() != "r1" || m.Agency() != "DE" {
				t.Errorf("ReplicaID, Agency = %q, %q; want r1, DE", m.ReplicaID(), m.Agency())
			}
			if tc.addr != "" && m.Layer("audit").Addr().String() != tc.addr {
				t.Errorf("Addr = %s; want %s", m.Layer("audit").Addr(), tc.addr)
			}
		})
	}
}

func TestLayerPanicsOnBadName(t *testing.T) {
	ca := newTestCA(t, "DE")
	m := listen(t, config(t, ca, ca, "r1", time.Now()))
	for _, name := range []string{"", "Audit", "audit fwd", strings.Repeat("a", 65)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Layer(%q) did not panic", name)
				}
			}()
			m.Layer(name)
		}()
	}
}

// TestDialTimeout dials a TCP listener that never answers the handshake:
// Dial must give up at its timeout, and DialContext when its context ends.
func TestDialTimeout(t *testing.T) {
	ca := newTestCA(t, "DE")
	m := listen(t, config(t, ca, ca, "a", time.Now()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen: %v", err)
	}
	var held []net.Conn
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read only after acceptDone
		}
	}()
	defer func() {
		_ = ln.Close()
		<-acceptDone
		for _, c := range held {
			_ = c.Close()
		}
	}()

	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err = m.Layer("audit").Dial(raft.ServerAddress(ln.Addr().String()), timeout)
	if d := time.Since(start); err == nil || d < timeout || d > timeout+3*time.Second {
		t.Errorf("Dial to a silent server = %v after %v; want an error after about %v", err, d, timeout)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(timeout, cancel)
	start = time.Now()
	_, err = m.Layer("audit").DialContext(ctx, ln.Addr().String(), time.Minute)
	if d := time.Since(start); err == nil || d > timeout+3*time.Second {
		t.Errorf("DialContext to a silent server, cancelled after %v = %v after %v; want an error soon after the cancel", timeout, err, d)
	}
}

// TestLayerClose checks that closing one layer ends its connections, both
// accepted and dialled, and leaves the other channels running.
func TestLayerClose(t *testing.T) {
	ca := newTestCA(t, "DE")
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	a := listen(t, config(t, ca, ca, "a", time.Now()))
	b := listen(t, config(t, ca, ca, "b", time.Now()))
	for _, ch := range []string{"audit", "data"} {
		serveEcho(a.Layer(ch), &wg)
		serveEcho(b.Layer(ch), &wg)
	}
	dial := func(from, to *Mux, ch string) net.Conn {
		t.Helper()
		c, err := from.Layer(ch).Dial(raft.ServerAddress(to.Addr().String()), 5*time.Second)
		if err != nil {
			t.Fatalf("Dial %s: %v", ch, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, err := roundTrip(c, "hi"); err != nil {
			t.Fatalf("round trip on %s: %v", ch, err)
		}
		return c
	}
	in := dial(b, a, "audit")  // accepted by a's audit layer
	out := dial(a, b, "audit") // dialled by a's audit layer
	other := dial(b, a, "data")

	if err := a.Layer("audit").Close(); err != nil {
		t.Fatalf("Layer.Close: %v", err)
	}
	for name, c := range map[string]net.Conn{"accepted": in, "dialled": out} {
		if _, err := roundTrip(c, "again"); err == nil {
			t.Errorf("round trip on the %s connection of a closed layer succeeded", name)
		}
	}
	if _, err := roundTrip(other, "still"); err != nil {
		t.Errorf("round trip on another channel after Layer.Close: %v", err)
	}
}

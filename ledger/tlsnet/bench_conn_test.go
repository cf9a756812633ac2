package tlsnet

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// connPair returns a connected client and server over plain TCP or over a
// tlsnet Layer on loopback; both are closed when the benchmark ends.
func connPair(b *testing.B, transport string) (client, server net.Conn) {
	b.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	switch transport {
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = ln.Close() }()
		go func() {
			c, err := ln.Accept()
			accepted <- result{c, err}
		}()
		if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			b.Fatal(err)
		}
	case "tlsnet":
		ca := newTestCA(b, "DE")
		srv := listen(b, config(b, ca, ca, "srv", time.Now()))
		cli := listen(b, config(b, ca, ca, "cli", time.Now()))
		go func() {
			c, err := srv.Layer("audit").Accept()
			accepted <- result{c, err}
		}()
		var err error
		if client, err = cli.Layer("audit").Dial(raft.ServerAddress(srv.Addr().String()), 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	r := <-accepted
	if r.err != nil {
		b.Fatal(r.err)
	}
	b.Cleanup(func() { _ = client.Close(); _ = r.c.Close() })
	return client, r.c
}

// BenchmarkRoundTrip measures one request and its echo: ns/op is the round
// trip latency.
func BenchmarkRoundTrip(b *testing.B) {
	for _, transport := range []string{"tcp", "tlsnet"} {
		for _, size := range []int{64, 1024} {
			b.Run(fmt.Sprintf("%s/size=%d", transport, size), func(b *testing.B) {
				client, server := connPair(b, transport)
				done := make(chan struct{})
				go func() {
					defer close(done)
					buf := make([]byte, size)
					for {
						if _, err := io.ReadFull(server, buf); err != nil {
							return
						}
						if _, err := server.Write(buf); err != nil {
							return
						}
					}
				}()
				msg := make([]byte, size)
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := client.Write(msg); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(client, msg); err != nil {
						b.Fatal(err)
					}
				}
				_ = client.Close()
				<-done
			})
		}
	}
}

// BenchmarkThroughput streams 64 KiB frames one way; the last frame asks
// for an acknowledgement, so the time covers every byte delivered. It
// counts b.N itself rather than using b.Loop, because the final
// acknowledgement must be inside the timed region.
func BenchmarkThroughput(b *testing.B) {
	const frame = 64 << 10
	for _, transport := range []string{"tcp", "tlsnet"} {
		b.Run(transport, func(b *testing.B) {
			client, server := connPair(b, transport)
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, frame)
				for {
					if _, err := io.ReadFull(server, buf); err != nil {
						return
					}
					if buf[0] == 1 {
						if _, err := server.Write([]byte{1}); err != nil {
							return
						}
					}
				}
			}()
			data := make([]byte, frame)
			b.SetBytes(frame)
			b.ResetTimer()
			for i := range b.N {
				if i == b.N-1 {
					data[0] = 1
				}
				if _, err := client.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := io.ReadFull(client, data[:1]); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = client.Close()
			<-done
		})
	}
}

// BenchmarkDial measures opening a connection, which raft does once per
// pooled connection: TCP connect alone, or tlsnet's connect, mutual TLS
// handshake and channel header.
func BenchmarkDial(b *testing.B) {
	b.Run("tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
		for b.Loop() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			_ = c.Close()
		}
		_ = ln.Close()
		<-done
	})
	b.Run("tlsnet", func(b *testing.B) {
		ca := newTestCA(b, "DE")
		srv := listen(b, config(b, ca, ca, "srv", time.Now()))
		cli := listen(b, config(b, ca, ca, "cli", time.Now()))
		l := srv.Layer("audit")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
		addr := raft.ServerAddress(srv.Addr().String())
		for b.Loop() {
			c, err := cli.Layer("audit").Dial(addr, 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			_ = c.Close()
		}
		_ = l.Close()
		<-done
	})
}

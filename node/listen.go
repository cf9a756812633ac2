package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/xborder/xborder/ledger/tlsnet"
	"github.com/xborder/xborder/node/host"
)

// Listen addresses Init and InitFromBundle write for empty fields: port 0
// on loopback, a free port bound at the first start (see ListenConfig).
const (
	DefaultListenRaft = "127.0.0.1:0"
	DefaultListenP2P  = "/ip4/127.0.0.1/tcp/0"
	DefaultListenAPI  = "127.0.0.1:0"
)

// Bound is DIR/listen.json: the addresses a replica bound at its last
// start, with the ports chosen. Open writes it at every start, complete
// before api.url (a start cut short may leave fields empty); tools read the
// running replica's ports from it, and a later start binds the raft and p2p
// ports recorded here again where config.yaml says port 0.
type Bound struct {
	Raft string `json:"raft"` // host:port of the replica transport
	P2P  string `json:"p2p"`  // libp2p multiaddr, /ip4/ADDR/tcp/PORT
	API  string `json:"api"`  // host:port of the HTTP API
}

// ReadBound reads DIR/listen.json, written by a replica that started.
func ReadBound(dir string) (*Bound, error) {
	b, err := os.ReadFile(filepath.Join(dir, ListenFile))
	if err != nil {
		return nil, fmt.Errorf("read bound addresses: %w", err)
	}
	var a Bound
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("read bound addresses %s: %w", filepath.Join(dir, ListenFile), err)
	}
	return &a, nil
}

// keepPorts returns l with each raft or p2p address of port 0 replaced by
// the address on the same host that an earlier start bound (DIR/listen.json),
// so that a restarted replica keeps the addresses the other replicas' Raft
// configurations and the partners' copies of the agency card name. The API
// address is left alone: each start binds a free port and writes api.url.
func keepPorts(dir string, l ListenConfig) ListenConfig {
	prev, err := ReadBound(dir)
	if err != nil {
		return l
	}
	if host, port, err := net.SplitHostPort(l.Raft); err == nil && port == "0" {
		if h, p, err := net.SplitHostPort(prev.Raft); err == nil && h == host && p != "0" {
			l.Raft = prev.Raft
		}
	}
	if ip, zero := anyPort(l.P2P); zero {
		if prevIP, prevZero := anyPort(prev.P2P); prevIP == ip && !prevZero {
			l.P2P = prev.P2P
		}
	}
	return l
}

// anyPort splits a /ip4|ip6/ADDR/tcp/PORT multiaddr: it returns the
// address part and whether PORT is 0. A malformed s gives "".
func anyPort(s string) (ip string, zero bool) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return "", false
	}
	port, err := a.ValueForProtocol(ma.P_TCP)
	if err != nil {
		return "", false
	}
	ip, ok := strings.CutSuffix(a.String(), "/tcp/"+port)
	if !ok {
		return "", false
	}
	return ip, port == "0"
}

// writeBound records the addresses a replica has bound so far in
// DIR/listen.json: those of its replica transport, libp2p host and API
// listener, each nil until bound. Open calls it once the replica transport
// listens, before a Raft configuration can name its address (so that a
// start cut short after a bootstrap binds the same port next time), and
// again once everything listens.
func writeBound(dir string, mux *tlsnet.Mux, h *host.Host, api net.Listener) error {
	var b Bound
	if mux != nil {
		b.Raft = mux.Addr().String()
	}
	if h != nil {
		if as := h.Addrs(); len(as) > 0 {
			b.P2P = as[0].String()
		}
	}
	if api != nil {
		b.API = api.Addr().String()
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("write bound addresses: %w", err)
	}
	path := filepath.Join(dir, ListenFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), publicFileMode); err != nil {
		return fmt.Errorf("write bound addresses: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("write bound addresses: %w", err), os.Remove(tmp))
	}
	return nil
}

// isLoopback reports whether the API address is on loopback, where the API
// speaks plain HTTP; anywhere else it speaks TLS.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("api address %q: %v: %w", addr, err, ErrConfig)
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback(), nil
}

// localAddr is the host:port a local client dials to reach a listener: an
// unspecified address (0.0.0.0, ::) is reached on loopback.
func localAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

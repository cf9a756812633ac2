package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/xborder/xborder/ledger/tlsnet"
	"github.com/xborder/xborder/node/host"
)

// RoutesFile is the file of a data directory that names, for other
// replicas' and partner replicas' addresses, the address this replica
// dials instead: a port forward, a tunnel, or the proxies of `testnet
// chaos`, which cuts, delays and resets the links there. It is read at
// start, in every build; without it every address is dialled as it is.
//
// A route cannot make a replica talk to anyone else: Raft links are TLS
// with the agency's replica certificates (tlsnet) and libp2p links
// authenticate the partner's peer ID, so whoever can write the file can
// only cut or slow links, as they could by stopping the replica.
const RoutesFile = "routes.json"

// Routes is RoutesFile.
type Routes struct {
	// Raft maps the transport address (host:port) of another replica of
	// the agency to the address dialled instead.
	Raft map[string]string `json:"raft,omitempty"`
	// P2P maps a partner replica's multiaddr, as its card lists it, to the
	// multiaddr dialled instead; the card's address is then never dialled
	// (nor one learned from identify): every libp2p link to that replica
	// takes the route.
	P2P map[string]string `json:"p2p,omitempty"`
}

// ReadRoutes reads DIR/routes.json; no file is no routes.
func ReadRoutes(dir string) (Routes, error) {
	var r Routes
	b, err := os.ReadFile(filepath.Join(dir, RoutesFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read routes: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("read routes: %s: %w (fix or remove the file)", RoutesFile, err)
	}
	for from, to := range r.Raft {
		for _, a := range []string{from, to} {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return r, fmt.Errorf("read routes: %s: raft route %q → %q: %q is not host:port (fix or remove the file)", RoutesFile, from, to, a)
			}
		}
	}
	for from, to := range r.P2P {
		for _, a := range []string{from, to} {
			if _, err := ma.NewMultiaddr(a); err != nil {
				return r, fmt.Errorf("read routes: %s: p2p route %q → %q: %q is not a multiaddr (fix or remove the file)", RoutesFile, from, to, a)
			}
		}
	}
	return r, nil
}

// WriteRoutes writes DIR/routes.json; the replica reads it at its next
// start.
func WriteRoutes(dir string, r Routes) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write routes: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, RoutesFile), b, 0o644); err != nil {
		return fmt.Errorf("write routes: %w", err)
	}
	return nil
}

// loadRoutes reads the routes of dir and hands the libp2p ones to the
// host package (for every host of the process: `node run` runs one).
func loadRoutes(dir string, log *slog.Logger) (map[string]string, error) {
	r, err := ReadRoutes(dir)
	if err != nil || len(r.Raft)+len(r.P2P) == 0 {
		return nil, err
	}
	host.SetDialVia(r.P2P)
	log.Info("links routed as routes.json says", "raft", len(r.Raft), "p2p", len(r.P2P))
	return r.Raft, nil
}

// viaLayer dials another replica at its route.
type viaLayer struct {
	*tlsnet.Layer
	via map[string]string
}

func (l viaLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if p, ok := l.via[string(a)]; ok {
		a = raft.ServerAddress(p)
	}
	return l.Layer.Dial(a, timeout)
}

// routed returns l dialling through the routes via.
func routed(l raft.StreamLayer, via map[string]string) raft.StreamLayer {
	tl, ok := l.(*tlsnet.Layer)
	if !ok || len(via) == 0 {
		return l
	}
	return viaLayer{Layer: tl, via: via}
}
